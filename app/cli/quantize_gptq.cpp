#include "app/cli/quantize_gptq.h"

#include "app/cli/command.h"
#include "core/infer/activationstats.h"
#include "core/infer/evaluate.h"
#include "core/infer/gptqmodel.h"
#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/quant/quantize.h"
#include "core/util/fileio.h"

#include <QJsonObject>
#include <cstdio>

namespace cli {

void addGptqOptions(QCommandLineParser& p)
{
    p.addOption({QStringLiteral("method"),
                 QStringLiteral("rtn (round to nearest, default), awq (activation-aware scales, any quantized format) "
                                "or gptq (integer formats for the checkpoint targets; Q4_0-Q8_0, Q2_K-Q6_K, IQ4_NL, "
                                "IQ4_XS into GGUF); awq and gptq need --calibration."),
                 QStringLiteral("METHOD")});
    p.addOption({QStringLiteral("calibration"), QStringLiteral("Calibration text for AWQ / GPTQ (UTF-8, like the model's input)."),
                 QStringLiteral("FILE")});
    p.addOption({QStringLiteral("calibration-vocab"),
                 QStringLiteral("Tokenize the calibration text with this model's vocabulary (e.g. the GGUF of a "
                                "safetensors folder that has no tokenizer files)."),
                 QStringLiteral("MODEL")});
    p.addOption({QStringList{QStringLiteral("calibration-ctx"), QStringLiteral("ctx")},
                 QStringLiteral("Tokens per calibration sequence (default min(512, the model's maximum))."),
                 QStringLiteral("N")});
    p.addOption({QStringList{QStringLiteral("calibration-sequences"), QStringLiteral("chunks")},
                 QStringLiteral("At most N calibration sequences (GPTQ default: the whole text; AWQ: 8, 0 for the "
                                "whole text)."),
                 QStringLiteral("N")});
    p.addOption({QStringLiteral("act-order"),
                 QStringLiteral("GPTQ: quantize columns by decreasing activation energy (writes g_idx).")});
    p.addOption({QStringLiteral("static-groups"),
                 QStringLiteral("GPTQ: group grids from the unquantized weights (consecutive groups with act-order).")});
    p.addOption({QStringLiteral("hessians"),
                 QStringLiteral("GPTQ from stored Hessians (calibrate --out FILE.h5 --hessians) instead of a "
                                "calibration pass; no sequential update."),
                 QStringLiteral("FILE.h5")});
    p.addOption({QStringLiteral("damp"),
                 QStringLiteral("GPTQ: dampening as a fraction of the Hessian's mean diagonal (default 0.01)."),
                 QStringLiteral("FRACTION")});
}

int runGptqPass(const QCommandLineParser& parser, qs::QuantizeParams& params, QJsonArray& summary)
{
    const QString method = parser.value(QStringLiteral("method"));
    if (method.compare(QStringLiteral("gptq"), Qt::CaseInsensitive) != 0)
        return 0; // rtn and awq: the quantize job does the rest
    const bool storedHessians = parser.isSet(QStringLiteral("hessians"));
    if (!parser.isSet(QStringLiteral("calibration")) && !storedHessians)
        return fail(QStringLiteral("--method gptq needs --calibration FILE (a text to run the model on) or "
                                   "--hessians FILE.h5 (calibrate --out FILE.h5 --hessians)"));
    // What the target cannot write fails now, not after the calibration pass.
    if (const auto problems = qs::quantizeTargetProblems(params.target, *params.model, params.plan,
                                                         params.allowRequantize);
        !problems.empty())
        return fail(QStringLiteral("cannot quantize: %1").arg(toQString(problems.front())));
    if (params.target == qs::QuantizeTarget::Gguf && parser.isSet(QStringLiteral("act-order")))
        return fail(QStringLiteral("--act-order cannot be used with --to gguf: a ggml block holds consecutive "
                                   "columns, so GPTQ quantizes them in order"));
    qs::GptqModelParams g;
    g.model = params.model;
    std::vector<std::string> notes;
    g.plan = qs::gptqPassPlan(params, &notes);
    for (const auto& n : notes)
        std::fprintf(stderr, "note: %s\n", n.c_str());
    if (params.target == qs::QuantizeTarget::Gguf && !params.importanceFile.empty())
        g.importance = std::make_shared<const qs::ImportanceMatrix>(qs::ImportanceMatrix::load(params.importanceFile));
    g.textFile = parser.value(QStringLiteral("calibration")).toStdString();
    if (storedHessians)
        g.hessians = std::make_shared<const qs::ActivationStats>(
            qs::loadActivationStats(parser.value(QStringLiteral("hessians")).toStdString()));
    else if (parser.isSet(QStringLiteral("calibration-vocab"))) {
        const auto vocab = qs::openModel(parser.value(QStringLiteral("calibration-vocab")).toStdString());
        g.tokens = qs::evaluationTokens(*vocab, qs::readRegularFile(g.textFile, uint64_t{1} << 30, "text"));
    }
    g.actOrder = parser.isSet(QStringLiteral("act-order"));
    g.staticGroups = parser.isSet(QStringLiteral("static-groups"));
    if (parser.isSet(QStringLiteral("damp"))) {
        bool ok = false;
        g.percDamp = parser.value(QStringLiteral("damp")).toDouble(&ok);
        if (!ok || !(g.percDamp >= 0) || g.percDamp > 10)
            return fail(QStringLiteral("--damp needs a fraction from 0 to 10, such as 0.01"));
    }
    g.threads = params.threads;
    for (const auto& [name, field] : {std::pair{QStringLiteral("calibration-ctx"), &g.ctx},
                                      std::pair{QStringLiteral("calibration-sequences"), &g.maxSequences}}) {
        if (!parser.isSet(name))
            continue;
        bool ok = false;
        const uint value = parser.value(name).toUInt(&ok);
        if (!ok || value == 0)
            return fail(QStringLiteral("--%1 needs a positive whole number").arg(name));
        *field = value;
    }
    qs::GptqModelJob job(std::move(g));
    if (const int code = runJob(job, QStringLiteral("GPTQ calibration")))
        return code;
    const qs::GptqModelResult& r = job.result();
    if (r.tensors.empty())
        std::fprintf(stderr, "warning: --method gptq: no tensor of the plan has a per-group or per-channel "
                             "integer format or (GGUF) a ggml type GPTQ supports; nothing was quantized with GPTQ\n");
    for (const auto& t : r.tensors)
        summary.append(QJsonObject{{QStringLiteral("name"), toQString(t.tensor)},
                                   {QStringLiteral("format"), toQString(t.format)},
                                   {QStringLiteral("proxy_error"), t.result.proxyError},
                                   {QStringLiteral("proxy_error_rtn"), t.result.proxyErrorRtn}});
    params.precomputedCodes = qs::precomputedCodes(r);
    params.precomputedGgml = qs::precomputedGgml(r);
    return 0;
}

} // namespace cli
