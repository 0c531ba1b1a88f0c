// quantscope-cli quantize: runs a plan on a model and writes the quantized files (core/quant/quantize.h).
#include "app/cli/command.h"
#include "app/cli/quantize_gptq.h"
#include "core/model/model.h"
#include "core/plan/modellayout.h"
#include "core/plan/planio.h"
#include "core/quant/method.h"
#include "core/quant/quantize.h"
#include "core/util/error.h"

#include <QCommandLineParser>
#include <QJsonArray>
#include <cmath>
#include <cstdio>

namespace {

// "2G", "500M", "64K" or plain bytes; decimal units, as llama.cpp's gguf-split reads --split-max-size.
std::optional<uint64_t> parseSize(const QString& text)
{
    QString s = text.trimmed().toUpper();
    uint64_t unit = 1;
    if (s.endsWith(QLatin1Char('B')))
        s.chop(1);
    if (s.endsWith(QLatin1Char('K')))
        unit = 1000;
    else if (s.endsWith(QLatin1Char('M')))
        unit = 1000 * 1000;
    else if (s.endsWith(QLatin1Char('G')))
        unit = 1000 * 1000 * 1000;
    else if (s.endsWith(QLatin1Char('T')))
        unit = uint64_t{1000} * 1000 * 1000 * 1000;
    if (unit > 1)
        s.chop(1);
    bool ok = false;
    const double v = s.toDouble(&ok);
    if (!ok || v <= 0 || v * double(unit) >= 1.8e19)
        return std::nullopt;
    return static_cast<uint64_t>(v * double(unit));
}

int runQuantize(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("quantize needs exactly one MODEL"));
    if (!parser.isSet(QStringLiteral("plan")) || !parser.isSet(QStringLiteral("out")))
        return cli::fail(QStringLiteral("quantize needs --plan PLAN.json and --out PATH"));
    const QString targetName = parser.value(QStringLiteral("to")).isEmpty()
                                   ? QStringLiteral("gguf")
                                   : parser.value(QStringLiteral("to"));
    const auto target = qs::quantizeTargetFromName(targetName.toStdString());
    if (!target)
        return cli::fail(QStringLiteral("--to must be gguf, compressed-tensors, gptq or fake-quant, not '%1'")
                             .arg(targetName));
    qs::QuantizeParams params;
    params.target = *target;
    params.output = parser.value(QStringLiteral("out")).toStdString();
    params.allowRequantize = parser.isSet(QStringLiteral("allow-requantize"));
    if (parser.isSet(QStringLiteral("imatrix")))
        params.importanceFile = parser.value(QStringLiteral("imatrix")).toStdString();
    if (parser.isSet(QStringLiteral("split-max-size"))) {
        const auto size = parseSize(parser.value(QStringLiteral("split-max-size")));
        if (!size)
            return cli::fail(QStringLiteral("--split-max-size needs a size such as 2G or 500M"));
        params.splitMaxBytes = *size;
    }
    if (parser.isSet(QStringLiteral("method"))) {
        const QString m = parser.value(QStringLiteral("method"));
        const auto method = qs::quantMethodFromName(m.toStdString());
        if (!method)
            return cli::fail(QStringLiteral("--method must be rtn, awq or gptq, not '%1'").arg(m));
        params.method = *method;
    }
    if (parser.isSet(QStringLiteral("calibration")))
        params.calibrationFile = parser.value(QStringLiteral("calibration")).toStdString();
    for (const char* name : {"ctx", "chunks"}) {
        const QString key = QString::fromLatin1(name);
        if (!parser.isSet(key))
            continue;
        bool ok = false;
        const uint value = parser.value(key).toUInt(&ok);
        if (!ok)
            return cli::fail(QStringLiteral("--%1 needs a whole number").arg(key));
        (key == QLatin1String("ctx") ? params.calibrationCtx : params.calibrationChunks) = value;
    }
    if (params.method == qs::QuantMethod::Awq && params.calibrationFile.empty())
        return cli::fail(QStringLiteral("--method awq needs --calibration FILE (a text like the model's input)"));
    const bool json = parser.isSet(QStringLiteral("json"));

    params.model = qs::openModel(pos[0].toStdString());
    params.plan = qs::loadPlan(parser.value(QStringLiteral("plan")).toStdString());
    std::string why;
    std::vector<std::string> notes;
    if (!qs::planMatchesModel(params.plan, qs::layoutFromModel(*params.model), &why) && !why.empty())
        notes.push_back("the plan was made for another model: " + why);
    QJsonArray gptqTensors;
    if (const int code = cli::runGptqPass(parser, params, gptqTensors))
        return code;

    // Ctrl-C cancels (cli::runJob): the job unwinds, removes its temporary files, and we exit with 130.
    qs::QuantizeJob job(std::move(params));
    if (const int code = cli::runJob(job, QStringLiteral("quantizing")))
        return code;

    const qs::QuantizeResult& r = job.result();
    std::vector<std::string> warnings = notes;
    warnings.insert(warnings.end(), r.warnings.begin(), r.warnings.end());
    if (json) {
        QJsonObject o;
        o[QStringLiteral("bytes_written")] = static_cast<qint64>(r.bytesWritten);
        o[QStringLiteral("predicted_weight_bytes")] = static_cast<qint64>(r.predictedWeightBytes);
        o[QStringLiteral("weight_bytes_written")] = static_cast<qint64>(r.weightBytesWritten);
        o[QStringLiteral("seconds")] = r.seconds;
        QJsonArray files, warn;
        for (const auto& f : r.files)
            files.append(cli::toQString(f.string()));
        for (const auto& w : warnings)
            warn.append(cli::toQString(w));
        o[QStringLiteral("files")] = files;
        o[QStringLiteral("warnings")] = warn;
        QJsonArray methodNotes;
        for (const auto& n : r.methodNotes)
            methodNotes.append(cli::toQString(n));
        o[QStringLiteral("method_notes")] = methodNotes;
        // method awq: per layer group the chosen scales and the output errors on the calibration sample.
        QJsonArray awq;
        for (const auto& g : r.awqGroups) {
            QJsonArray tensorNames;
            for (const auto& t : g.tensors)
                tensorNames.append(cli::toQString(t));
            awq.append(QJsonObject{{QStringLiteral("layer"), int(g.layer)},
                                   {QStringLiteral("group"), cli::toQString(g.group)},
                                   {QStringLiteral("tensors"), tensorNames},
                                   {QStringLiteral("format"), cli::toQString(g.format)},
                                   {QStringLiteral("scaled"), g.scaled},
                                   {QStringLiteral("folded_into"), cli::toQString(g.foldedInto)},
                                   {QStringLiteral("alpha"), g.alpha},
                                   {QStringLiteral("duo"), g.duo},
                                   {QStringLiteral("clipped_tensors"), g.clippedTensors},
                                   {QStringLiteral("error_rtn"), g.errorRtn},
                                   {QStringLiteral("error_awq"), g.errorAfter},
                                   {QStringLiteral("note"), cli::toQString(g.note)}});
        }
        if (!r.awqGroups.empty())
            o[QStringLiteral("awq")] = awq;
        // Per tensor: sqnr_db is null for a tensor copied unchanged (no error), measured on sampled rows.
        QJsonArray tensors;
        for (const auto& t : r.tensors)
            tensors.append(QJsonObject{
                {QStringLiteral("name"), cli::toQString(t.name)},
                {QStringLiteral("format"), cli::toQString(t.format)},
                {QStringLiteral("bytes"), static_cast<qint64>(t.bytes)},
                {QStringLiteral("copied"), t.copied},
                {QStringLiteral("sqnr_db"), std::isfinite(t.sqnrDb) ? QJsonValue(t.sqnrDb) : QJsonValue()},
                {QStringLiteral("sampled_values"), static_cast<qint64>(t.sampledValues)}});
        o[QStringLiteral("tensors")] = tensors;
        if (!gptqTensors.isEmpty())
            o[QStringLiteral("gptq")] = gptqTensors;
        cli::printJson(o);
        return 0;
    }
    for (const auto& w : warnings)
        std::fprintf(stderr, "warning: %s\n", w.c_str());
    for (const auto& n : r.methodNotes)
        std::printf("%s\n", n.c_str());
    for (const auto& f : r.files)
        std::printf("%s\n", f.string().c_str());
    std::printf("%llu bytes written (%llu of tensor data, plan predicted %llu) in %.1f s\n",
                static_cast<unsigned long long>(r.bytesWritten),
                static_cast<unsigned long long>(r.weightBytesWritten),
                static_cast<unsigned long long>(r.predictedWeightBytes), r.seconds);
    return 0;
}

const CliRegistrar quantize(
    {"quantize",
     "quantize MODEL --plan PLAN.json --to gguf|compressed-tensors|gptq|fake-quant --out PATH [--imatrix "
     "FILE] [--split-max-size SIZE] [--allow-requantize] [--method rtn|awq|gptq --calibration FILE "
     "[--calibration-vocab MODEL] [--calibration-ctx N] [--calibration-sequences N] [--act-order] "
     "[--static-groups] [--damp F]] [--json]",
     "write the quantized model a plan describes (GGUF: byte-identical to llama-quantize)",
     [](QCommandLineParser& p) {
         p.addOption({QStringLiteral("plan"), QStringLiteral("The plan (quantscope-cli plan ... --out)."),
                      QStringLiteral("PLAN.json")});
         p.addOption({QStringLiteral("to"), QStringLiteral("Output format (default gguf)."),
                      QStringLiteral("FORMAT")});
         p.addOption({QStringLiteral("out"), QStringLiteral("Output file."), QStringLiteral("PATH")});
         p.addOption({QStringLiteral("imatrix"),
                      QStringLiteral("llama.cpp importance matrix (GGUF or legacy .dat)."),
                      QStringLiteral("FILE")});
         p.addOption(
             {QStringLiteral("split-max-size"),
              QStringLiteral("Split the output into shards of at most SIZE of tensor data (2G, 500M)."),
              QStringLiteral("SIZE")});
         p.addOption({QStringLiteral("allow-requantize"),
                      QStringLiteral("Re-quantize tensors that are already quantized (lower quality).")});
         cli::addGptqOptions(p);
         p.addOption({QStringLiteral("json"), QStringLiteral("Print the result as JSON.")});
         p.addPositionalArgument(QStringLiteral("MODEL"), QStringLiteral("Model file (GGUF for --to gguf)."));
     },
     runQuantize,
     /*computes=*/true});

} // namespace
