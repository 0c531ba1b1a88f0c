// quantscope-cli sensitivity: error and exact size of every quantizable tensor in every candidate format.
#include "app/cli/command.h"
#include "app/cli/sensitivity_kl.h"
#include "core/util/namepattern.h"
#include "core/jobs/jobs.h"
#include "core/model/model.h"
#include "core/quant/format.h"
#include "core/quant/imatrix.h"
#include "core/quant/sensitivity.h"
#include "core/util/job.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>

namespace {

// Weight tensors (2-D and up) outside the matrix, with the reason: said, not silently left out.
std::vector<std::pair<std::string, std::string>> skippedWeights(const qs::Model& model)
{
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& t : model.tensors())
        if (t.shape.size() >= 2)
            if (std::string why = qs::sensitivitySkipReason(t); !why.empty())
                out.emplace_back(t.name, std::move(why));
    return out;
}

// JSON has no infinities: a lossless cell's SQNR (and similar) is written as null.
QJsonValue number(double v)
{
    return std::isfinite(v) ? QJsonValue(v) : QJsonValue(QJsonValue::Null);
}

std::string fixed(double v)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return buf;
}

QJsonArray strings(const std::vector<std::string>& v)
{
    QJsonArray a;
    for (const auto& s : v)
        a.append(QString::fromStdString(s));
    return a;
}

int runSensitivity(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("sensitivity needs exactly one PATH"));

    qs::SensitivityOptions options;
    if (parser.isSet(QStringLiteral("formats"))) {
        for (const QString& f :
             parser.value(QStringLiteral("formats")).split(QLatin1Char(','), Qt::SkipEmptyParts)) {
            const QString name = f.trimmed();
            if (name.compare(QLatin1String("default"), Qt::CaseInsensitive) == 0) {
                for (const auto& d : qs::defaultSensitivityFormats())
                    options.formats.push_back(d);
                continue;
            }
            if (name.compare(QLatin1String("all"), Qt::CaseInsensitive) == 0) {
                for (const auto& d : qs::allFormatNames())
                    options.formats.push_back(d);
                continue;
            }
            const auto format = qs::findFormat(name.toStdString());
            if (!format)
                return cli::fail(
                    QStringLiteral("unknown format '%1' (see 'quantscope-cli formats')").arg(name));
            options.formats.push_back(format->name());
        }
        if (options.formats.empty())
            return cli::fail(QStringLiteral("--formats needs at least one format"));
    }
    QString measureError;
    if (cli::wantsKlSensitivity(parser, &measureError))
        return cli::runKlSensitivity(parser, pos[0], options.formats);
    if (!measureError.isEmpty())
        return cli::fail(measureError);
    for (const char* klOnly : {"text", "granularity", "ctx", "tokens", "first-chunk"})
        if (parser.isSet(QLatin1String(klOnly)))
            return cli::fail(QStringLiteral("--%1 applies to --measure kl only").arg(QLatin1String(klOnly)));
    // RE2 (NamePattern): linear time in the name, so a hostile pattern cannot hang or overflow the stack.
    std::optional<qs::NamePattern> regex;
    if (parser.isSet(QStringLiteral("tensor"))) {
        if (const std::string why = qs::NamePattern::check(parser.value(QStringLiteral("tensor")).toStdString());
            !why.empty())
            return cli::fail(QStringLiteral("invalid --tensor regex: %1").arg(QString::fromStdString(why)));
        regex.emplace(parser.value(QStringLiteral("tensor")).toStdString());
        options.tensorFilter = [&regex](const qs::TensorInfo& t) { return regex->search(t.name); };
    }
    options.useCache = !parser.isSet(QStringLiteral("no-cache"));
    // Sampled by default (docs/sensitivity.md); --exact measures every row.
    options.exact = parser.isSet(QStringLiteral("exact"));
    if (parser.isSet(QStringLiteral("sample-fraction"))) {
        bool ok = false;
        const double f = parser.value(QStringLiteral("sample-fraction")).toDouble(&ok);
        if (!ok || !(f > 0) || f > 1)
            return cli::fail(QStringLiteral("--sample-fraction needs a number in (0, 1]"));
        options.sampleFraction = f;
    }
    if (parser.isSet(QStringLiteral("sample-seed"))) {
        bool ok = false;
        options.sampleSeed = parser.value(QStringLiteral("sample-seed")).toULongLong(&ok);
        if (!ok)
            return cli::fail(QStringLiteral("--sample-seed needs a non-negative integer"));
    }
    qs::LoadJob load({pos[0].toStdString()});
    if (const int code = cli::runJob(load, QStringLiteral("loading")))
        return code;
    const std::shared_ptr<qs::Model> model = load.takeResult().model;
    std::optional<qs::ImportanceMatrix> importance;
    if (parser.isSet(QStringLiteral("imatrix"))) {
        importance = qs::ImportanceMatrix::load(parser.value(QStringLiteral("imatrix")).toStdString());
        options.importance = &*importance;
    }

    qs::SensitivityJob job({model, options, {}});
    if (const int code = cli::runJob(job, QStringLiteral("sensitivity")))
        return code;
    const std::vector<qs::SensitivityResult> results = job.takeResult().cells;
    const auto formats = options.formats.empty() ? qs::defaultSensitivityFormats() : options.formats;

    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject root;
        root[QStringLiteral("path")] = pos[0];
        root[QStringLiteral("formats")] = strings(formats);
        root[QStringLiteral("exact")] = options.exact;
        if (!options.exact) {
            QJsonObject sampling;
            sampling[QStringLiteral("fraction")] = options.sampleFraction;
            sampling[QStringLiteral("min_rows")] = static_cast<qint64>(options.sampleMinRows);
            sampling[QStringLiteral("seed")] = QString::number(options.sampleSeed);
            sampling[QStringLiteral("confidence")] = 0.95;
            root[QStringLiteral("sampling")] = sampling;
        }
        if (importance) {
            const auto coverage = qs::matchImportance(*importance, *model);
            QJsonObject imx;
            imx[QStringLiteral("path")] = parser.value(QStringLiteral("imatrix"));
            imx[QStringLiteral("format")] =
                importance->format() == qs::ImportanceFileFormat::Gguf        ? QStringLiteral("gguf")
                : importance->format() == qs::ImportanceFileFormat::LegacyDat ? QStringLiteral("legacy")
                                                                               : QStringLiteral("activation-stats");
            imx[QStringLiteral("entries")] = static_cast<qint64>(importance->entries().size());
            imx[QStringLiteral("datasets")] = strings(importance->datasets());
            imx[QStringLiteral("chunk_count")] = static_cast<qint64>(importance->chunkCount());
            imx[QStringLiteral("matched")] = static_cast<qint64>(coverage.matched.size());
            imx[QStringLiteral("missing")] = strings(coverage.missing);
            imx[QStringLiteral("mismatched")] = strings(coverage.mismatched);
            imx[QStringLiteral("unused")] = strings(coverage.unused);
            root[QStringLiteral("imatrix")] = imx;
        }
        QJsonArray list;
        for (const auto& r : results) {
            QJsonObject o;
            o[QStringLiteral("tensor")] = QString::fromStdString(r.tensor);
            o[QStringLiteral("format")] = QString::fromStdString(r.format);
            o[QStringLiteral("rows")] = static_cast<qint64>(r.rows);
            o[QStringLiteral("cols")] = static_cast<qint64>(r.cols);
            o[QStringLiteral("cached")] = r.fromCache;
            o[QStringLiteral("sampled")] = r.isSampled();
            if (!r.ok()) {
                o[QStringLiteral("error")] = QString::fromStdString(r.error);
                list.append(o);
                continue;
            }
            const auto& m = r.metrics;
            o[QStringLiteral("bits_per_weight")] = r.bitsPerWeight;
            o[QStringLiteral("bytes")] = static_cast<qint64>(r.bytes);
            o[QStringLiteral("mse")] = number(m.mse);
            o[QStringLiteral("rel_mse")] = number(m.relMse);
            o[QStringLiteral("sqnr_db")] = number(m.sqnrDb);
            o[QStringLiteral("max_abs_err")] = number(m.maxAbsErr);
            o[QStringLiteral("cosine")] = number(m.cosine);
            if (importance)
                o[QStringLiteral("weighted_mse")] =
                    m.weightedMse ? number(*m.weightedMse) : QJsonValue(QJsonValue::Null);
            if (const auto& sample = r.sample) {
                auto interval = [](double low, double high) { return QJsonArray{number(low), number(high)}; };
                o[QStringLiteral("sample_fraction")] = sample->fraction;
                o[QStringLiteral("sampled_rows")] = static_cast<qint64>(sample->rowsMeasured);
                o[QStringLiteral("confidence")] = sample->confidence;
                o[QStringLiteral("mse_ci")] = interval(sample->mseLow, sample->mseHigh);
                o[QStringLiteral("sqnr_db_ci")] = interval(sample->sqnrLowDb, sample->sqnrHighDb);
                if (sample->weightedMseLow && sample->weightedMseHigh)
                    o[QStringLiteral("weighted_mse_ci")] =
                        interval(*sample->weightedMseLow, *sample->weightedMseHigh);
            }
            list.append(o);
        }
        root[QStringLiteral("results")] = list;
        QJsonArray skipped;
        for (const auto& [tensor, reason] : skippedWeights(*model)) {
            QJsonObject o;
            o[QStringLiteral("tensor")] = QString::fromStdString(tensor);
            o[QStringLiteral("reason")] = QString::fromStdString(reason);
            skipped.append(o);
        }
        root[QStringLiteral("skipped")] = skipped;
        cli::printJson(root);
        return 0;
    }

    // Text: one line per tensor with SQNR (dB) per format and the bits per weight of the first format.
    std::printf("%s\nSQNR in dB (higher is better); '-' where a format does not apply%s\n\n", qPrintable(pos[0]),
                options.exact ? ""
                              : "; '~' marks an estimate from a row sample, '±' its 95 % interval's half-width "
                                "(--exact measures every row)");
    std::map<std::string, std::map<std::string, const qs::SensitivityResult*>> byTensor;
    std::vector<std::string> order;
    int width = 32;
    for (const auto& r : results) {
        if (!byTensor.count(r.tensor))
            order.push_back(r.tensor);
        byTensor[r.tensor][r.format] = &r;
        width = std::max(width, cli::displayWidth(cli::shown(r.tensor)));
    }
    std::printf("%s", cli::padRight("tensor", width).c_str());
    for (const auto& f : formats)
        std::printf(" %14s", f.c_str());
    std::printf("\n");
    for (const auto& t : order) {
        std::printf("%s", cli::padRight(cli::shown(t), width).c_str());
        for (const auto& f : formats) {
            const auto* r = byTensor[t][f];
            if (!r || !r->ok())
                std::printf(" %14s", "-");
            else if (std::isinf(r->metrics.sqnrDb))
                std::printf(" %14s", "lossless");
            else if (r->sample && std::isfinite(r->sample->sqnrHighDb) && std::isfinite(r->sample->sqnrLowDb))
                std::printf(" %s", cli::padLeft("~" + fixed(r->metrics.sqnrDb) + "±" +
                                                    fixed((r->sample->sqnrHighDb - r->sample->sqnrLowDb) / 2),
                                                14)
                                       .c_str());
            else
                std::printf(" %14.2f", r->metrics.sqnrDb);
        }
        std::printf("\n");
    }
    std::printf("\n%s", cli::padRight("bits per weight (first tensor)", width).c_str());
    for (const auto& f : formats) {
        const auto* r = order.empty() ? nullptr : byTensor[order.front()][f];
        if (r && r->ok())
            std::printf(" %14.4f", r->bitsPerWeight);
        else
            std::printf(" %14s", "-");
    }
    std::printf("\n");
    const auto skipped = skippedWeights(*model);
    if (!skipped.empty()) {
        std::printf("\nnot measured: %zu weight tensor(s)", skipped.size());
        for (const auto& [tensor, reason] : skipped)
            std::printf("\n  %s: %s", cli::shown(tensor).c_str(), reason.c_str());
        std::printf("\n");
    }
    if (importance) {
        const auto coverage = qs::matchImportance(*importance, *model);
        std::printf("\nimportance: %zu tensors matched, %zu without data", coverage.matched.size(),
                    coverage.missing.size() + coverage.mismatched.size());
        for (const auto& m : coverage.missing)
            std::printf("\n  no importance: %s", m.c_str());
        for (const auto& m : coverage.mismatched)
            std::printf("\n  length mismatch: %s", m.c_str());
        std::printf("\n");
    }
    return 0;
}

const CliRegistrar sensitivity(
    {"sensitivity",
     "sensitivity PATH [--formats LIST] [--imatrix FILE] [--tensor REGEX] [--measure weight|kl --text FILE "
     "[--granularity tensor|group] [--ctx N] [--tokens N] [--first-chunk N]] [--exact] [--sample-fraction F] "
     "[--sample-seed N] [--json] [--no-cache]",
     "quantization error (weights, or measured ΔKL of the output) and exact size per tensor and format",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("formats"),
                      QStringLiteral("Comma-separated formats ('default', 'all' or names from 'formats')."),
                      QStringLiteral("LIST")});
         p.addOption({QStringLiteral("imatrix"),
                      QStringLiteral("llama.cpp importance file (GGUF or legacy .dat)."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("tensor"), QStringLiteral("Only tensors whose name matches this regex."),
                      QStringLiteral("REGEX")});
         p.addOption(
             {QStringLiteral("no-cache"), QStringLiteral("Neither read nor write the sensitivity cache.")});
         p.addOption({QStringLiteral("exact"),
                      QStringLiteral("Measure every row (default: large tensors are estimated from a row sample, "
                                     "with 95 % intervals).")});
         p.addOption({QStringLiteral("sample-fraction"),
                      QStringLiteral("Share of rows sampled per tensor (default 1/16; at least 256 rows)."),
                      QStringLiteral("F")});
         p.addOption({QStringLiteral("sample-seed"), QStringLiteral("Seed of the row sample (default 0)."),
                      QStringLiteral("N")});
         cli::addKlSensitivityOptions(p);
         p.addOption({QStringLiteral("json"), QStringLiteral("Print JSON.")});
         p.addPositionalArgument(QStringLiteral("PATH"), QStringLiteral("Model file or folder."));
     },
     runSensitivity, true});

} // namespace
