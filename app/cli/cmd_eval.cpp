// quantscope-cli eval: perplexity of a model over a text and, with a plan, the perplexity and KL divergence
// of its fake-quantized version (core/infer/evaluate.h, llama-perplexity's chunking).
#include "app/cli/command.h"
#include "core/infer/evaluate.h"
#include "core/infer/methodcompare.h"
#include "core/model/model.h"
#include "core/plan/planio.h"
#include "core/util/error.h"

#include <QCommandLineParser>
#include <QFileInfo>
#include <QJsonArray>
#include <cstdio>

namespace {

std::optional<uint32_t> positiveOption(const QCommandLineParser& parser, const QString& name)
{
    bool ok = false;
    const uint v = parser.value(name).toUInt(&ok);
    if (!ok || v < 1)
        return std::nullopt;
    return v;
}

// Optional whole-number options >= 1, each into its target. Returns 0, or fail()'s exit code.
int readPositives(const QCommandLineParser& parser, std::initializer_list<std::pair<const char*, uint32_t*>> options)
{
    for (auto [name, target] : options) {
        if (!parser.isSet(QLatin1String(name)))
            continue;
        const auto v = positiveOption(parser, QLatin1String(name));
        if (!v)
            return cli::fail(
                QStringLiteral("--%1 needs a whole number, at least 1").arg(QLatin1String(name)));
        *target = *v;
    }
    return 0;
}

// --ctx and --chunks.
int readChunking(const QCommandLineParser& parser, uint32_t& ctx, uint32_t& maxChunks)
{
    return readPositives(parser, {{"ctx", &ctx}, {"chunks", &maxChunks}});
}

QJsonObject resultJson(const qs::EvalResult& r)
{
    QJsonObject o;
    o[QStringLiteral("ctx")] = static_cast<qint64>(r.ctx);
    o[QStringLiteral("tokens")] = static_cast<qint64>(r.tokens);
    o[QStringLiteral("scored")] = static_cast<qint64>(r.positions);
    o[QStringLiteral("perplexity")] = r.perplexity;
    o[QStringLiteral("seconds")] = r.seconds;
    QJsonArray chunks;
    for (const auto& c : r.perChunk) {
        QJsonObject co;
        co[QStringLiteral("perplexity")] = c.perplexity;
        if (r.quantized) {
            co[QStringLiteral("perplexity_quantized")] = c.perplexityQuantized;
            co[QStringLiteral("kld_mean")] = c.kldMean;
            co[QStringLiteral("kld_max")] = c.kldMax;
            co[QStringLiteral("same_top")] = c.sameTop;
        }
        chunks.append(co);
    }
    if (r.quantized) {
        o[QStringLiteral("perplexity_quantized")] = r.perplexityQuantized;
        o[QStringLiteral("kld_mean")] = r.kldMean;
        o[QStringLiteral("kld_median")] = r.kldMedian;
        o[QStringLiteral("kld_p99")] = r.kldP99;
        o[QStringLiteral("kld_max")] = r.kldMax;
        o[QStringLiteral("same_top")] = r.sameTop;
        o[QStringLiteral("kld_exact")] = r.kldExact;
    }
    o[QStringLiteral("chunks")] = chunks;
    return o;
}

// eval --methods rtn,gptq,awq: the plan quantized with each method, each evaluated (core/infer/methodcompare.h).
int runEvalMethods(QCommandLineParser& parser, const QString& model)
{
    if (!parser.isSet(QStringLiteral("plan")))
        return cli::fail(QStringLiteral("--methods needs --plan PLAN.json"));
    qs::MethodComparisonParams params;
    params.methods.clear();
    for (const QString& name : parser.value(QStringLiteral("methods")).split(QLatin1Char(','), Qt::SkipEmptyParts)) {
        const auto m = qs::quantMethodFromName(name.trimmed().toStdString());
        if (!m)
            return cli::fail(QStringLiteral("unknown method '%1' (rtn, gptq, awq)").arg(name));
        if (std::find(params.methods.begin(), params.methods.end(), *m) == params.methods.end())
            params.methods.push_back(*m);
    }
    if (params.methods.empty())
        return cli::fail(QStringLiteral("--methods needs a list such as rtn,gptq,awq"));
    if (const int code = readChunking(parser, params.ctx, params.maxChunks))
        return code;
    if (const int code = readPositives(parser, {{"calibration-ctx", &params.calibrationCtx},
                                                {"calibration-sequences", &params.calibrationChunks}}))
        return code;
    params.textFile = parser.value(QStringLiteral("text")).toStdString();
    params.calibrationFile = parser.value(QStringLiteral("calibration")).toStdString();
    params.llamaCppActivations = parser.isSet(QStringLiteral("llama-cpp-arithmetic"));
    params.model = qs::openModel(model.toStdString());
    params.plan = qs::loadPlan(parser.value(QStringLiteral("plan")).toStdString());
    qs::MethodComparisonJob job(std::move(params));
    if (const int code = cli::runJob(job, QStringLiteral("comparing methods")))
        return code;
    const qs::MethodComparisonResult& r = job.result();
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject o;
        o[QStringLiteral("target")] = QString::fromStdString(r.target);
        QJsonArray list;
        for (const qs::MethodOutcome& m : r.outcomes) {
            QJsonObject mo = m.ok() ? resultJson(m.eval) : QJsonObject();
            mo[QStringLiteral("method")] = QString::fromLatin1(qs::quantMethodName(m.method));
            mo[QStringLiteral("ok")] = m.ok();
            mo[QStringLiteral("error")] = m.ok() ? QJsonValue() : QJsonValue(QString::fromStdString(m.error));
            mo[QStringLiteral("quantize_seconds")] = m.quantizeSeconds;
            mo[QStringLiteral("weight_bytes")] = static_cast<qint64>(m.weightBytes);
            list.append(mo);
        }
        o[QStringLiteral("methods")] = list;
        cli::printJson(o);
        return 0;
    }
    std::printf("%-6s %14s %12s %12s %12s %10s\n", "method", "ppl quantized", "KLD mean", "KLD p99", "same top",
                "weights");
    for (const qs::MethodOutcome& m : r.outcomes) {
        if (!m.ok()) {
            std::printf("%-6s not evaluated: %s\n", qs::quantMethodLabel(m.method), m.error.c_str());
            continue;
        }
        std::printf("%-6s %14.4f %12.6f %12.6f %11.2f%% %10s\n", qs::quantMethodLabel(m.method),
                    m.eval.perplexityQuantized, m.eval.kldMean, m.eval.kldP99, 100.0 * m.eval.sameTop,
                    qPrintable(QString::number(double(m.weightBytes) / (1 << 20), 'f', 2) + QStringLiteral(" MiB")));
    }
    for (const qs::MethodOutcome& m : r.outcomes)
        if (m.ok()) {
            std::printf("original perplexity %.4f (%u chunks of %u tokens, written as %s)\n", m.eval.perplexity,
                        m.eval.chunks, m.eval.ctx, r.target.c_str());
            break;
        }
    return 0;
}

int runEval(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("eval needs exactly one MODEL"));
    if (!parser.isSet(QStringLiteral("text")))
        return cli::fail(QStringLiteral("eval needs --text FILE"));
    if (parser.isSet(QStringLiteral("methods")))
        return runEvalMethods(parser, pos[0]);
    qs::EvalParams params;
    if (const int code = readChunking(parser, params.ctx, params.maxChunks))
        return code;
    params.textFile = parser.value(QStringLiteral("text")).toStdString();
    params.llamaCppActivations = parser.isSet(QStringLiteral("llama-cpp-arithmetic"));
    params.model = qs::openModel(pos[0].toStdString());
    if (parser.isSet(QStringLiteral("plan")))
        params.plan = qs::loadPlan(parser.value(QStringLiteral("plan")).toStdString());
    if (parser.isSet(QStringLiteral("quantized"))) {
        if (params.plan)
            return cli::fail(QStringLiteral("--quantized and --plan exclude each other"));
        params.quantizedModel = qs::openModel(parser.value(QStringLiteral("quantized")).toStdString());
    }

    qs::EvalJob job(std::move(params));
    if (const int code = cli::runJob(job, QStringLiteral("evaluating")))
        return code;
    const qs::EvalResult& r = job.result();
    if (parser.isSet(QStringLiteral("json"))) {
        cli::printJson(resultJson(r));
        return 0;
    }
    std::printf("%u chunks of %u tokens, %zu positions scored\n", r.chunks, r.ctx, r.positions);
    std::printf("perplexity            %.4f\n", r.perplexity);
    if (r.quantized) {
        std::printf("perplexity quantized  %.4f\n", r.perplexityQuantized);
        std::printf("KL divergence         mean %.6f  median %.6f  p99 %.6f  max %.6f%s\n", r.kldMean,
                    r.kldMedian, r.kldP99, r.kldMax, r.kldExact ? "" : "  (top-k approximation)");
        std::printf("same top token        %.2f %%\n", 100.0 * r.sameTop);
    }
    return 0;
}

int runCalibrate(QCommandLineParser& parser)
{
    const QStringList pos = parser.positionalArguments();
    if (pos.size() != 1)
        return cli::fail(QStringLiteral("calibrate needs exactly one MODEL"));
    const QString out = parser.value(QStringLiteral("imatrix-out"));
    const QString statsOut = parser.value(QStringLiteral("out"));
    if (!parser.isSet(QStringLiteral("text")) || (out.isEmpty() && statsOut.isEmpty()))
        return cli::fail(QStringLiteral(
            "calibrate needs --text FILE and --out FILE.h5 and/or --imatrix-out FILE.gguf|FILE.dat"));
    const bool gguf = out.endsWith(QLatin1String(".gguf"), Qt::CaseInsensitive);
    if (!out.isEmpty() && !gguf && !out.endsWith(QLatin1String(".dat"), Qt::CaseInsensitive))
        return cli::fail(
            QStringLiteral("--imatrix-out must name a .gguf (llama.cpp's current imatrix layout) or "
                           ".dat file (the legacy layout)"));
    if (parser.isSet(QStringLiteral("hessians")) && statsOut.isEmpty())
        return cli::fail(QStringLiteral("--hessians needs --out FILE.h5 to write them to"));
    qs::CalibrateParams params;
    if (const int code = readChunking(parser, params.ctx, params.maxChunks))
        return code;
    params.textFile = parser.value(QStringLiteral("text")).toStdString();
    params.statsOut = statsOut.toStdString();
    params.hessians = parser.isSet(QStringLiteral("hessians"));
    params.model = qs::openModel(pos[0].toStdString());
    qs::CalibrateJob job(std::move(params));
    if (const int code = cli::runJob(job, QStringLiteral("calibrating")))
        return code;
    const qs::CalibrateResult& r = job.result();
    const std::string dataset = QFileInfo(parser.value(QStringLiteral("text"))).fileName().toStdString();
    if (!out.isEmpty() && gguf)
        qs::writeImportanceGguf(r, out.toStdString(), dataset);
    else if (!out.isEmpty())
        qs::writeImportanceLegacy(r, out.toStdString(), dataset);
    if (parser.isSet(QStringLiteral("json"))) {
        QJsonObject o;
        o[QStringLiteral("entries")] = static_cast<qint64>(r.entries.size());
        o[QStringLiteral("inputs")] = static_cast<qint64>(r.activations.inputs.size());
        o[QStringLiteral("chunks")] = static_cast<qint64>(r.chunks);
        o[QStringLiteral("ctx")] = static_cast<qint64>(r.ctx);
        o[QStringLiteral("tokens")] = static_cast<qint64>(r.tokens);
        o[QStringLiteral("hessians")] = parser.isSet(QStringLiteral("hessians"));
        o[QStringLiteral("file")] = out.isEmpty() ? QJsonValue() : QJsonValue(out);
        o[QStringLiteral("stats_file")] = statsOut.isEmpty() ? QJsonValue() : QJsonValue(statsOut);
        cli::printJson(o);
        return 0;
    }
    if (!out.isEmpty())
        std::printf("%s: %zu matrices, %u chunks of %u tokens\n", qPrintable(out), r.entries.size(), r.chunks,
                    r.ctx);
    if (!statsOut.isEmpty())
        std::printf("%s: activation statistics of %zu inputs%s\n", qPrintable(statsOut),
                    r.activations.inputs.size(), parser.isSet(QStringLiteral("hessians")) ? " with XᵀX" : "");
    return 0;
}

// --text FILE, --ctx N and --chunks N, shared by calibrate and eval.
void addTextOptions(QCommandLineParser& p, const char* what, const char* verb)
{
    p.addOption({QStringLiteral("text"), QStringLiteral("The %1 text (UTF-8).").arg(QLatin1String(what)),
                 QStringLiteral("FILE")});
    p.addOption({QStringLiteral("ctx"), QStringLiteral("Tokens per chunk (default 512, at most the model's maximum)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("chunks"), QStringLiteral("%1 at most N chunks.").arg(QLatin1String(verb)),
                 QStringLiteral("N")});
}

const CliRegistrar calibrate(
    {"calibrate",
     "calibrate MODEL --text FILE [--ctx N] [--chunks N] [--out FILE.h5 [--hessians]] "
     "[--imatrix-out FILE.gguf|FILE.dat] [--json]",
     "activation statistics (HDF5: mean square, mean |x|, max |x| per input channel, optionally XᵀX) and "
     "llama.cpp's importance matrix (GGUF or legacy .dat; read by llama-quantize, sensitivity, quantize)",
     [](QCommandLineParser& p) {
         addTextOptions(p, "calibration", "Use");
         p.addOption({QStringLiteral("out"),
                      QStringLiteral("Write the activation statistics here (HDF5, docs/inference.md)."),
                      QStringLiteral("FILE.h5")});
         p.addOption({QStringLiteral("hessians"),
                      QStringLiteral("Also store XᵀX/n of every distinct input (cols² floats each; runs "
                                     "layer by layer).")});
         p.addOption({QStringLiteral("imatrix-out"),
                      QStringLiteral("Write the importance matrix here (.gguf or .dat)."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print the result as JSON.")});
         p.addPositionalArgument(QStringLiteral("MODEL"),
                                 QStringLiteral("GGUF, or safetensors with tokenizer.json."));
     },
     runCalibrate,
     /*computes=*/true});

const CliRegistrar eval(
    {"eval",
     "eval MODEL --text FILE [--quantized FILE | --plan PLAN.json [--methods rtn,gptq,awq --calibration FILE "
     "[--calibration-ctx N] [--calibration-sequences N]]] [--ctx N] [--chunks N] [--llama-cpp-arithmetic] "
     "[--json]",
     "perplexity over a text; with a plan also the quantized perplexity and KL divergence "
     "(llama-perplexity's "
     "chunking)",
     [](QCommandLineParser& p) {
         addTextOptions(p, "evaluation", "Evaluate");
         p.addOption({QStringLiteral("plan"), QStringLiteral("Fake-quantize the tensors the plan assigns."),
                      QStringLiteral("PLAN.json")});
         p.addOption({QStringLiteral("quantized"),
                      QStringLiteral("A quantized file of the same model (a quantize output) to compare with MODEL."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("llama-cpp-arithmetic"),
                      QStringLiteral("Round every matmul's input as llama.cpp's CPU backend does (Q8_0 / Q8_K "
                                     "/ F16 by weight type), so the numbers compare with llama-perplexity's.")});
         p.addOption({QStringLiteral("methods"),
                      QStringLiteral("Quantize the plan with each method (rtn, gptq, awq) into a temporary file "
                                     "and evaluate each."),
                      QStringLiteral("LIST")});
         p.addOption({QStringLiteral("calibration"), QStringLiteral("Calibration text for GPTQ and AWQ."),
                      QStringLiteral("FILE")});
         p.addOption({QStringLiteral("calibration-ctx"), QStringLiteral("Tokens per calibration sequence."),
                      QStringLiteral("N")});
         p.addOption({QStringLiteral("calibration-sequences"),
                      QStringLiteral("Calibration sequences (default 8)."), QStringLiteral("N")});
         p.addOption({QStringLiteral("json"), QStringLiteral("Print the result as JSON.")});
         p.addPositionalArgument(QStringLiteral("MODEL"),
                                 QStringLiteral("GGUF, or safetensors with tokenizer.json."));
     },
     runEval,
     /*computes=*/true});

} // namespace
