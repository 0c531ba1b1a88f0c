// quantscope-cli sensitivity --measure kl: the increase of the output's KL divergence when one tensor (or
// layer group) alone is quantized, per format, over a calibration text.
#include "app/cli/sensitivity_kl.h"

#include "app/cli/command.h"
#include "core/infer/klsensitivity.h"
#include "core/model/model.h"

#include <QCommandLineParser>
#include <algorithm>
#include <cstdio>
#include <map>

namespace cli {

namespace {

// A whole number >= minimum for an optional option; returns false (after fail()) when malformed.
bool readCount(const QCommandLineParser& parser, const char* name, uint64_t minimum, uint64_t& out, int& code)
{
    if (!parser.isSet(QLatin1String(name)))
        return true;
    bool ok = false;
    const qulonglong v = parser.value(QLatin1String(name)).toULongLong(&ok);
    if (!ok || v < minimum) {
        code = fail(QStringLiteral("--%1 needs a whole number, at least %2").arg(QLatin1String(name)).arg(minimum));
        return false;
    }
    out = v;
    return true;
}

} // namespace

void addKlSensitivityOptions(QCommandLineParser& p)
{
    p.addOption({QStringLiteral("measure"),
                 QStringLiteral("weight (default): round-trip error of the weights; kl: the measured increase of "
                                "the output's KL divergence when a tensor alone is quantized (needs --text)."),
                 QStringLiteral("M")});
    p.addOption({QStringLiteral("text"), QStringLiteral("With --measure kl: the calibration text (UTF-8)."),
                 QStringLiteral("FILE")});
    p.addOption({QStringLiteral("granularity"),
                 QStringLiteral("With --measure kl: tensor (default; what 'plan --sensitivity' needs) or group "
                                "(per block: attention q/k/v/o and MLP gate/up/down)."),
                 QStringLiteral("G")});
    p.addOption({QStringLiteral("ctx"),
                 QStringLiteral("With --measure kl: tokens per window (default 512, at most the model's maximum)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("tokens"),
                 QStringLiteral("With --measure kl: run at most N tokens (whole windows; default 4096)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("first-chunk"),
                 QStringLiteral("With --measure kl: skip the first N windows (keep them to verify a plan on)."),
                 QStringLiteral("N")});
}

bool wantsKlSensitivity(const QCommandLineParser& parser, QString* error)
{
    if (!parser.isSet(QStringLiteral("measure")))
        return false;
    const QString m = parser.value(QStringLiteral("measure")).trimmed().toLower();
    if (m == QLatin1String("kl"))
        return true;
    if (m != QLatin1String("weight"))
        *error = QStringLiteral("--measure needs weight or kl, not '%1'").arg(parser.value(QStringLiteral("measure")));
    return false;
}

int runKlSensitivity(const QCommandLineParser& parser, const QString& path, const std::vector<std::string>& formats)
{
    if (!parser.isSet(QStringLiteral("text")))
        return fail(QStringLiteral("--measure kl needs --text FILE (the calibration text)"));
    for (const char* weightOnly : {"imatrix", "tensor"})
        if (parser.isSet(QLatin1String(weightOnly)))
            return fail(QStringLiteral("--%1 applies to --measure weight only").arg(QLatin1String(weightOnly)));
    qs::KlSensitivityParams params;
    qs::KlSensitivityOptions& o = params.options;
    o.formats = formats;
    if (parser.isSet(QStringLiteral("granularity"))) {
        const QString g = parser.value(QStringLiteral("granularity")).trimmed().toLower();
        if (g == QLatin1String("group"))
            o.granularity = qs::KlGranularity::Group;
        else if (g != QLatin1String("tensor"))
            return fail(QStringLiteral("--granularity needs tensor or group"));
    }
    uint64_t ctx = 0, first = 0;
    int code = 0;
    if (!readCount(parser, "ctx", 4, ctx, code) || !readCount(parser, "tokens", 1, o.maxTokens, code) ||
        !readCount(parser, "first-chunk", 0, first, code))
        return code;
    if (ctx > UINT32_MAX || first > UINT32_MAX)
        return fail(QStringLiteral("--ctx and --first-chunk must be below 2^32"));
    o.ctx = uint32_t(ctx);
    o.firstChunk = uint32_t(first);
    o.useCache = !parser.isSet(QStringLiteral("no-cache"));
    params.textFile = parser.value(QStringLiteral("text")).toStdString();
    std::shared_ptr<const qs::Model> model = qs::openModel(path.toStdString());
    params.model = model;

    qs::KlSensitivityJob job(std::move(params));
    if (const int c = runJob(job, QStringLiteral("ΔKL sensitivity")))
        return c;
    const qs::KlSensitivityResult& r = job.result();
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root = qs::klSensitivityJson(r, *model);
        root[QStringLiteral("path")] = path;
        root[QStringLiteral("text")] = parser.value(QStringLiteral("text"));
        printJson(root);
        return 0;
    }
    std::printf("%s\nΔKL (nats, mean over %zu scored positions of %u window(s) of %u tokens from window %u): the "
                "increase of KL(original || quantized) when the unit alone is quantized; '-' where a format "
                "does not apply\n",
                qPrintable(path), r.positions, r.chunks, r.ctx, r.firstChunk);
    for (const auto& n : r.notes)
        std::printf("note: %s\n", n.c_str());
    std::map<std::string, std::map<std::string, const qs::KlSensitivityCell*>> byUnit;
    std::vector<std::string> order;
    int width = 28;
    for (const auto& c : r.cells) {
        if (!byUnit.count(c.unit))
            order.push_back(c.unit);
        byUnit[c.unit][c.format] = &c;
        width = std::max(width, displayWidth(shown(c.unit)));
    }
    std::printf("\n%s", padRight("unit", width).c_str());
    for (const auto& f : r.formats)
        std::printf(" %12s", f.c_str());
    std::printf("\n");
    for (const auto& u : order) {
        std::printf("%s", padRight(shown(u), width).c_str());
        for (const auto& f : r.formats) {
            const auto* c = byUnit[u][f];
            if (!c || !c->ok())
                std::printf(" %12s", "-");
            else
                std::printf(" %12.4g", c->deltaKl);
        }
        std::printf("\n");
    }
    std::printf("\n%zu cells, %zu from the cache, %.1f s\n", r.cells.size(), r.cachedCells, r.seconds);
    return 0;
}

} // namespace cli
