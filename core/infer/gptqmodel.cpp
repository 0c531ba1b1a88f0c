#include "core/infer/gptqmodel.h"

#include "core/infer/activationstats.h"

#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/quant/imatrix.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>

namespace qs {

namespace {

constexpr uint32_t kDefaultCtx = 512;
constexpr uint64_t kMaxTextBytes = uint64_t{1} << 30;

// The calibration batch: sequences of ctx tokens, BOS first where the vocabulary adds it.
struct Calibration {
    std::vector<std::vector<int32_t>> sequences;
    uint32_t ctx = 0;
};

Calibration calibrationSequences(const GptqModelParams& p, const TransformerConfig& config, JobControl* job)
{
    Calibration c;
    c.ctx = p.ctx;
    if (c.ctx == 0)
        c.ctx = config.contextLength > 0 ? uint32_t(std::min<uint64_t>(kDefaultCtx, config.contextLength))
                                         : kDefaultCtx;
    if (config.contextLength > 0 && c.ctx > config.contextLength)
        throw Error(ErrorCode::BadValue, "a calibration context of " + std::to_string(c.ctx) +
                                             " tokens is longer than the model's maximum of " +
                                             std::to_string(config.contextLength));
    if (c.ctx < 2)
        throw Error(ErrorCode::BadValue, "the calibration context must be at least 2 tokens");
    bool addBos = false;
    std::vector<int32_t> tokens = p.tokens;
    if (tokens.empty()) {
        reportProgress(job, 0, "tokenizing");
        const bool fromFile = p.text.empty() && !p.textFile.empty();
        tokens = evaluationTokens(*p.model, fromFile ? readRegularFile(p.textFile, kMaxTextBytes, "text") : p.text,
                                  &addBos);
    }
    if (tokens.size() < c.ctx)
        throw Error(ErrorCode::BadValue, "the calibration text has " + std::to_string(tokens.size()) +
                                             " tokens; a context of " + std::to_string(c.ctx) +
                                             " needs at least that many");
    size_t count = tokens.size() / c.ctx;
    if (p.maxSequences > 0)
        count = std::min<size_t>(count, p.maxSequences);
    const std::optional<int32_t> bos = addBos ? std::optional(tokens.front()) : std::nullopt;
    for (size_t i = 0; i < count; ++i) {
        std::vector<int32_t> seq(tokens.begin() + ptrdiff_t(i * c.ctx), tokens.begin() + ptrdiff_t((i + 1) * c.ctx));
        if (bos)
            seq[0] = *bos;
        c.sequences.push_back(std::move(seq));
    }
    return c;
}

std::vector<float> originalWeights(const Model& model, const std::string& name, int& rows, int& cols)
{
    const TensorInfo* t = model.find(name);
    if (!t || t->shape.size() != 2)
        throw Error(ErrorCode::BadValue, "GPTQ: " + name + " is not a 2-D weight");
    if (t->rows() > uint64_t(INT32_MAX) || t->columns() > uint64_t(INT32_MAX))
        throw Error(ErrorCode::Unsupported, "GPTQ: " + name + " is too large");
    rows = int(t->rows());
    cols = int(t->columns());
    std::vector<float> w(t->elements());
    model.decode(*t, 0, w.size(), w.data());
    return w;
}

} // namespace

GptqModelResult gptqQuantizeModel(const GptqModelParams& p, JobControl* job)
{
    const auto start = std::chrono::steady_clock::now();
    if (!p.model)
        throw Error(ErrorCode::BadValue, "no model to quantize");
    ForwardOptions options;
    options.threads = p.threads;
    options.plan = &p.plan; // overrides (the GPTQ results) take precedence over the plan and the cache
    Transformer transformer(p.model, options);
    const TransformerConfig& config = transformer.config();
    const bool stored = p.hessians != nullptr;
    const Calibration cal = stored ? Calibration{} : calibrationSequences(p, config, job);

    GptqModelResult result;
    result.ctx = stored ? p.hessians->ctx : cal.ctx;
    result.sequences = stored ? p.hessians->chunks : uint32_t(cal.sequences.size());
    result.tokens = stored ? size_t(p.hessians->tokens) : size_t(cal.ctx) * cal.sequences.size();

    std::vector<std::span<const int32_t>> spans;
    for (const auto& s : cal.sequences)
        spans.emplace_back(s);
    checkCancel(job);
    HiddenStates hidden = stored ? HiddenStates{} : transformer.embed(spans);

    // The tensors GPTQ handles: planned in a per-group or per-channel integer format.
    auto configFor = [&](const std::string& name) -> std::optional<GptqConfig> {
        if (name.empty())
            return std::nullopt;
        const auto format = p.plan.formatOf(name);
        if (!format)
            return std::nullopt;
        auto c = gptqConfigForFormat(*format);
        if (c) {
            c->actOrder = p.actOrder;
            c->staticGroups = p.staticGroups;
            c->percDamp = p.percDamp;
            c->blockSize = p.blockSize;
            c->threads = p.threads;
        }
        return c;
    };

    if (p.actOrder)
        for (const auto& [tensor, format] : p.plan.assignments())
            if (const auto c = gptqConfigForFormat(format); c && c->ggml)
                throw Error(ErrorCode::BadValue,
                            "GPTQ: act-order cannot be used with " + format + " (" + tensor +
                                "): a ggml block holds consecutive columns, so they are quantized in order");

    const uint32_t layers = config.layers;
    for (uint32_t l = 0; l < layers; ++l) {
        const LayerTensors& names = transformer.layerTensors(l);
        // The original's true-sequential order; the tensors of a sub-group share their input.
        const std::vector<std::vector<std::string>> groups{
            {names.q, names.k, names.v}, {names.o}, {names.gate, names.up}, {names.down}};
        for (size_t g = 0; g < groups.size(); ++g) {
            std::vector<std::pair<std::string, GptqConfig>> todo;
            for (const std::string& name : groups[g])
                if (auto c = configFor(name))
                    todo.emplace_back(name, *c);
            if (todo.empty())
                continue;
            checkCancel(job);
            const double base = (double(l) + double(g) / double(groups.size())) / double(layers);
            reportProgress(job, base, "block " + std::to_string(l + 1) + " of " + std::to_string(layers) +
                                          ": calibrating " + todo.front().first);
            // One H for the sub-group: its tensors see the same input.
            std::vector<float> h;
            int hCols = 0;
            if (stored) {
                const InputActivations* in = p.hessians->find(todo.front().first);
                if (!in || in->xtx.empty())
                    throw Error(ErrorCode::BadValue, "GPTQ: the activation statistics have no XᵀX for " +
                                                         todo.front().first + " (calibrate with --hessians)");
                hCols = int(in->columns());
                h.resize(in->xtx.size());
                for (size_t i = 0; i < h.size(); ++i)
                    h[i] = 2.0f * in->xtx[i]; // H = 2/n XᵀX
            } else {
                std::optional<HessianAccumulator> acc;
                transformer.setLinearHook([&](const LinearInput& in) {
                    if (in.layer != l || in.tensor != todo.front().first)
                        return;
                    if (!acc)
                        acc.emplace(int(in.x.rows()));
                    acc->add(in.x.data(), int64_t(in.x.cols())); // column-major in x tokens = tokens x in row-major
                });
                HiddenStates scratch = hidden;
                transformer.runLayers(scratch, l, l + 1);
                transformer.setLinearHook({});
                if (!acc)
                    throw Error(ErrorCode::Internal, "GPTQ: no input seen for " + todo.front().first);
                h = acc->hessian();
                hCols = acc->cols();
            }
            for (size_t k = 0; k < todo.size(); ++k) {
                const auto& [name, c] = todo[k];
                // GPTQ's own progress, mapped into this tensor's share of the sub-group; a cancel of the model job
                // reaches it at its next report (once per block of columns).
                const double span = 1.0 / (double(groups.size()) * double(layers) * double(todo.size()));
                const double from = base + span * double(k);
                checkCancel(job);
                reportProgress(job, from, "block " + std::to_string(l + 1) + ": GPTQ on " + name);
                int rows = 0, cols = 0;
                const std::vector<float> w = originalWeights(*p.model, name, rows, cols);
                if (cols != hCols)
                    throw Error(ErrorCode::BadValue, "GPTQ: " + name + " has " + std::to_string(cols) +
                                                         " columns but its input has " + std::to_string(hCols));
                GptqConfig tensorConfig = c;
                if (c.ggml && p.importance) {
                    const auto imp = p.importance->importanceFor(name, uint64_t(cols));
                    tensorConfig.importance.assign(imp.begin(), imp.end());
                }
                GptqTensorResult r;
                r.tensor = name;
                r.format = *p.plan.formatOf(name);
                r.layer = l;
                JobControl inner([&inner, job, from, span](const JobProgress& pr) {
                    if (job && job->cancelled())
                        inner.cancel();
                    reportProgress(job, from + span * pr.fraction);
                });
                if (job && job->cancelled())
                    inner.cancel();
                r.result = gptqQuantize(w.data(), rows, cols, h.data(), tensorConfig, &inner);
                if (!stored) // the next sub-group's inputs come from the quantized weights
                    transformer.setWeightOverride(name,
                                              std::make_shared<const std::vector<float>>(r.result.dequantized));
                result.tensors.push_back(std::move(r));
            }
        }
        // The block's output with its quantized weights: the next block's calibration input.
        checkCancel(job);
        if (!stored)
            transformer.runLayers(hidden, l, l + 1);
    }
    reportProgress(job, 1.0, "done");
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return result;
}

std::shared_ptr<const PrecomputedCodes> precomputedCodes(const GptqModelResult& result)
{
    auto out = std::make_shared<PrecomputedCodes>();
    for (const GptqTensorResult& t : result.tensors) {
        const GptqResult& g = t.result;
        if (!g.ggmlBlocks.empty())
            continue;
        auto c = std::make_shared<PrecomputedIntCodes>();
        c->rows = uint64_t(g.rows);
        c->cols = uint64_t(g.cols);
        c->groups = uint64_t(g.groups);
        c->groupLen = g.groups == 1 ? c->cols : (c->cols + c->groups - 1) / c->groups;
        if (const auto cfg = gptqConfigForFormat(t.format); cfg && cfg->groupSize > 0)
            c->groupLen = uint64_t(cfg->groupSize);
        c->q = g.codes;
        c->scale.resize(c->rows * c->groups);
        c->zero.resize(c->rows * c->groups);
        for (uint64_t k = 0; k < c->groups; ++k)
            for (uint64_t r = 0; r < c->rows; ++r) {
                c->scale[r * c->groups + k] = g.scales[k * c->rows + r];
                c->zero[r * c->groups + k] = static_cast<uint8_t>(g.zeros[k * c->rows + r]);
            }
        c->gIdx = g.gIdx;
        (*out)[t.tensor] = std::move(c);
    }
    return out;
}

std::shared_ptr<const PrecomputedGgml> precomputedGgml(const GptqModelResult& result)
{
    auto out = std::make_shared<PrecomputedGgml>();
    for (const GptqTensorResult& t : result.tensors) {
        const auto cfg = gptqConfigForFormat(t.format);
        if (t.result.ggmlBlocks.empty() || !cfg || !cfg->ggml)
            continue;
        auto b = std::make_shared<PrecomputedGgmlBlocks>();
        b->type = *cfg->ggml;
        b->rows = uint64_t(t.result.rows);
        b->cols = uint64_t(t.result.cols);
        b->bytes = t.result.ggmlBlocks;
        (*out)[t.tensor] = std::move(b);
    }
    return out;
}

GptqModelJob::GptqModelJob(GptqModelParams params) : BasicJob("GPTQ", std::move(params)) {}

void GptqModelJob::execute(JobControl& control)
{
    m_result = gptqQuantizeModel(m_params, &control);
}

} // namespace qs
