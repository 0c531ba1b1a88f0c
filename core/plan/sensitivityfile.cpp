#include "core/plan/sensitivityfile.h"
#include "core/io/jsonscan.h"

#include "core/util/error.h"
#include "core/util/fileio.h"

#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <cmath>

namespace qs {

SensitivityTable sensitivityTableFromJson(const std::string& json, bool preferWeighted, const std::string& fileName)
{
    const QJsonDocument doc = json::parseDocument(json, fileName, "json");
    const QJsonValue results = doc.object().value(QStringLiteral("results"));
    if (!results.isArray())
        throw FormatError(ErrorCode::BadValue, fileName, "results", std::nullopt,
                          "expected the output of 'quantscope-cli sensitivity --json'");
    const QJsonValue measureName = doc.object().value(QStringLiteral("measure"));
    const bool kl = measureName.toString() == QLatin1String("kl");
    if (!measureName.isUndefined() && !kl && measureName.toString() != QLatin1String("weight"))
        throw FormatError(ErrorCode::BadValue, fileName, "measure", std::nullopt,
                          "unknown measure '" + measureName.toString().toStdString() + "' (kl or weight)");
    if (kl && doc.object().value(QStringLiteral("granularity")).toString() == QLatin1String("group"))
        throw FormatError(ErrorCode::BadValue, fileName, "granularity", std::nullopt,
                          "ΔKL measured per layer group cannot drive a per-tensor fit: measure with "
                          "--granularity tensor");
    SensitivityTable table;
    table.measure = kl ? ErrorMeasure::DeltaKl : ErrorMeasure::WeightError;
    ErrorTable& t = table.errors;
    int i = 0;
    for (const QJsonValue& v : results.toArray()) {
        const std::string where = "results[" + std::to_string(i++) + "]";
        const QJsonObject o = v.toObject();
        if (o.contains(QStringLiteral("error")))
            continue;
        const std::string tensor = o.value(QStringLiteral("tensor")).toString().toStdString();
        const std::string format = o.value(QStringLiteral("format")).toString().toStdString();
        const double rows = o.value(QStringLiteral("rows")).toDouble(-1),
                     cols = o.value(QStringLiteral("cols")).toDouble(-1);
        if (kl) {
            const QJsonValue d = o.value(QStringLiteral("delta_kl"));
            if (tensor.empty() || format.empty())
                throw FormatError(ErrorCode::BadValue, fileName, where, std::nullopt, "needs tensor and format");
            if (!d.isDouble() || !std::isfinite(d.toDouble()) || d.toDouble() < 0)
                throw FormatError(ErrorCode::BadValue, fileName, where + ".delta_kl", std::nullopt,
                                  "needs a finite, non-negative number");
            t[tensor][format] = d.toDouble();
            continue;
        }
        QJsonValue mse = o.value(QStringLiteral("mse"));
        if (preferWeighted && o.value(QStringLiteral("weighted_mse")).isDouble())
            mse = o.value(QStringLiteral("weighted_mse"));
        if (tensor.empty() || format.empty() || rows < 0 || cols < 0)
            throw FormatError(ErrorCode::BadValue, fileName, where, std::nullopt,
                              "needs tensor, format, rows and cols");
        if (!mse.isDouble())
            continue; // null: an infinite value written by the sensitivity command
        t[tensor][format] = mse.toDouble() * rows * cols;
    }
    return table;
}

SensitivityTable loadSensitivityTable(const std::filesystem::path& path, bool preferWeighted)
{
    return sensitivityTableFromJson(readRegularFile(path, kMaxSmallJsonBytes), preferWeighted, path.string());
}

} // namespace qs
