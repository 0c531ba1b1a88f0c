// Whole-model AWQ on the layer-wise forward path. See awqmodel.h.
#include "core/infer/awqmodel.h"

#include "core/infer/evaluate.h"
#include "core/infer/forward.h"
#include "core/model/model.h"
#include "core/model/overlay.h"
#include "core/util/error.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <chrono>

namespace qs {

namespace {

struct GroupSpec {
    const char* label;
    std::vector<std::string> tensors;
    std::string foldInto;
    bool foldIsNorm = true;
    bool isO = false;
};

// Evenly spaced columns of x, at most n of them.
Eigen::MatrixXf sampleColumns(const Eigen::MatrixXf& x, uint32_t n)
{
    if (n == 0 || x.cols() <= Eigen::Index(n))
        return x;
    Eigen::MatrixXf out(x.rows(), Eigen::Index(n));
    for (Eigen::Index j = 0; j < Eigen::Index(n); ++j)
        out.col(j) = x.col(j * x.cols() / Eigen::Index(n));
    return out;
}

// Q(w) for the forward pass, in row chunks on the thread pool: the same values as one roundTrip of the whole
// tensor (chunks of rowAlignment rows, the whole tensor's range where one scale covers it).
std::shared_ptr<const std::vector<float>> quantized(const QuantFormat& f, const std::vector<float>& w,
                                                    uint64_t rows, uint64_t cols, unsigned threads)
{
    auto q = std::make_shared<std::vector<float>>(w.size());
    TensorRange range;
    if (f.needsTensorRange() && !w.empty()) {
        const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
        range = {*lo, *hi};
    }
    const uint64_t align = std::max<uint64_t>(1, f.rowAlignment(cols));
    const uint64_t chunk = std::max<uint64_t>(1, (uint64_t(1) << 16) / std::max<uint64_t>(1, cols * align)) * align;
    const uint64_t chunks = rows % align == 0 ? (rows + chunk - 1) / chunk : 1;
    std::atomic<uint64_t> next{0};
    ThreadPool::instance().runWorkers(unsigned(std::min<uint64_t>(resolveThreads(threads), chunks)), [&](unsigned) {
        for (;;) {
            const uint64_t i = next.fetch_add(1);
            if (i >= chunks)
                return;
            const uint64_t r0 = chunks == 1 ? 0 : i * chunk, n = chunks == 1 ? rows : std::min(chunk, rows - r0);
            f.roundTripChunk(w.data() + r0 * cols, n, cols, q->data() + r0 * cols, nullptr, range);
        }
    });
    return q;
}

} // namespace

AwqModelResult runAwq(const AwqModelParams& params, JobControl* job)
{
    const auto start = std::chrono::steady_clock::now();
    if (!params.model)
        throw Error(ErrorCode::BadValue, "no model for AWQ");
    const Model& model = *params.model;
    ForwardOptions fo;
    fo.threads = params.options.threads;
    Transformer tr(params.model, fo); // no plan: the overrides carry the quantized layers
    const TransformerConfig& cfg = tr.config();
    AwqModelResult result;
    OverlayBuilder transformed(model); // each layer's transformed tensors go to disk when the layer is done
    reportProgress(job, 0, "tokenizing");
    const auto chunks = calibrationChunks(model, params.ctx, params.maxChunks, params.text, params.textFile,
                                          params.tokens, &result.ctx, job);
    result.chunks = uint32_t(chunks.size());
    std::vector<std::span<const int32_t>> spans;
    for (const auto& c : chunks) {
        spans.emplace_back(c);
        result.tokens += c.size();
    }
    HiddenStates h = tr.embed(spans);

    auto planned = [&](const std::string& name) -> std::shared_ptr<const QuantFormat> {
        const auto f = params.plan.formatOf(name);
        if (!f)
            return nullptr;
        auto q = findFormat(*f);
        if (!q)
            throw Error(ErrorCode::BadValue, "the plan names unknown format '" + *f + "' for " + name);
        return q;
    };

    for (uint32_t l = 0; l < cfg.layers; ++l) {
        checkCancel(job);
        const std::string where = "layer " + std::to_string(l + 1) + " of " + std::to_string(cfg.layers);
        reportProgress(job, double(l) / cfg.layers, where);
        const LayerTensors& L = tr.layerTensors(l);
        const std::vector<GroupSpec> groups = {{"qkv", {L.q, L.k, L.v}, L.attnNorm, true, false},
                                               {"o", {L.o}, L.v, false, true},
                                               {"gate/up", {L.gate, L.up}, L.ffnNorm, true, false},
                                               {"down", {L.down}, L.up, false, false}};
        // This layer's linear inputs, computed by the (already quantized) earlier layers.
        std::map<std::string, Eigen::MatrixXf> inputs;
        tr.setLinearHook([&](const LinearInput& in) {
            if (in.layer == l && !inputs.count(in.tensor))
                inputs.emplace(in.tensor, in.x);
        });
        {
            HiddenStates probe = h;
            tr.runLayers(probe, l, l + 1);
        }
        tr.setLinearHook({});

        std::map<std::string, std::vector<float>> T; // this layer's transformed tensors
        auto current = [&](const std::string& name) -> std::vector<float>& {
            auto it = T.find(name);
            if (it == T.end())
                it = T.emplace(name, *tr.weights(name)).first;
            return it->second;
        };
        for (const GroupSpec& g : groups) {
            checkCancel(job);
            AwqGroupReport rep;
            rep.layer = l;
            rep.group = g.label;
            rep.tensors = g.tensors;
            std::vector<std::shared_ptr<const std::vector<float>>> keep;
            std::vector<AwqLinear> layers;
            bool allPlanned = true, anyPlanned = false;
            for (const auto& name : g.tensors) {
                const TensorInfo& t = *model.find(name);
                auto f = planned(name);
                allPlanned = allPlanned && f;
                anyPlanned = anyPlanned || f;
                if (f && rep.format.empty())
                    rep.format = f->name();
                keep.push_back(tr.weights(name)); // the original: earlier groups of this layer fold elsewhere
                layers.push_back({name, keep.back()->data(), t.rows(), t.columns(), f});
            }
            if (!anyPlanned)
                continue; // nothing to quantize
            const std::string label = "layer " + std::to_string(l) + " " + g.label;
            bool canScale = true;
            if (!allPlanned) {
                canScale = false;
                rep.note = "not every tensor of the group is planned: the scales would change a tensor that "
                           "is not re-quantized";
            } else if (!g.foldIsNorm && !planned(g.foldInto)) {
                canScale = false;
                rep.note = g.foldInto + " (which would carry 1/s) is not planned";
            } else if (g.isO && cfg.kvHeads != cfg.heads && !params.tieQueryHeads) {
                canScale = false;
                rep.note = "grouped-query attention (" + std::to_string(cfg.heads) + " query heads on " +
                           std::to_string(cfg.kvHeads) +
                           " kv heads): v has fewer rows than o has inputs and the scales are not tied";
            }
            const Eigen::MatrixXf& xAll = inputs.at(g.tensors.front());
            const Eigen::VectorXf meanAbs = xAll.cwiseAbs().rowwise().mean();
            AwqOptions o = params.options;
            o.scale = canScale;
            if (g.isO && cfg.kvHeads != cfg.heads) {
                o.tieHeads = cfg.heads;
                o.tieKvHeads = cfg.kvHeads;
                o.tieHeadDim = cfg.headDim;
            }
            const AwqGroupResult r =
                awqSearch(layers, sampleColumns(xAll, params.sampleTokens), meanAbs, o, job);
            std::vector<float> foldScales = r.scales;
            if (canScale && g.isO) {
                std::string why;
                const auto sv = kvHeadScales(r.scales, cfg.heads, cfg.kvHeads, cfg.headDim, &why);
                if (!sv)
                    throw Error(ErrorCode::Internal, "AWQ: " + label + ": " + why); // tied above
                foldScales = *sv;
            }
            for (size_t i = 0; i < layers.size(); ++i) {
                if (!layers[i].format)
                    continue;
                const auto& lr = r.layers[i];
                const bool changed = canScale || !lr.clipRatios.empty();
                if (changed)
                    T[layers[i].name] = lr.weights;
                rep.clippedTensors += !lr.clipRatios.empty();
                if (!lr.clipNote.empty() && lr.clipNote != "clipping did not lower the output error" &&
                    rep.note.find(lr.clipNote) == std::string::npos)
                    rep.note += (rep.note.empty() ? "" : "; ") + lr.clipNote;
            }
            if (canScale) {
                std::vector<float>& prev = current(g.foldInto);
                const TensorInfo& pt = *model.find(g.foldInto);
                if (g.foldIsNorm)
                    divideNorm(prev, foldScales);
                else
                    divideRows(prev, pt.rows(), pt.columns(), foldScales);
                rep.scaled = true;
                rep.foldedInto = g.foldInto;
                rep.alpha = r.alpha;
                rep.duo = r.duo;
            }
            rep.errorRtn = r.errorRtn;
            rep.errorAfter = r.errorAfter;
            if (!canScale)
                result.notes.push_back(label + ": not scaled: " + rep.note);
            result.groups.push_back(std::move(rep));
        }
        // The quantized layer computes the next layer's input.
        for (auto& [name, w] : T) {
            std::shared_ptr<const std::vector<float>> use;
            if (auto f = planned(name)) {
                const TensorInfo& t = *model.find(name);
                use = quantized(*f, w, t.rows(), t.columns(), params.options.threads);
            } else {
                use = std::make_shared<const std::vector<float>>(w);
            }
            tr.setWeightOverride(name, std::move(use));
        }
        // Planned tensors of the layer that AWQ left alone are quantized too.
        for (const auto& name : {L.q, L.k, L.v, L.o, L.gate, L.up, L.down})
            if (!T.count(name))
                if (auto f = planned(name)) {
                    const TensorInfo& t = *model.find(name);
                    tr.setWeightOverride(name,
                                         quantized(*f, *tr.weights(name), t.rows(), t.columns(), params.options.threads));
                }
        tr.runLayers(h, l, l + 1);
        // The layer's quantized weights are not needed again (the next layers start from h), and its
        // transformed weights are final: neither stays in memory.
        for (const auto& name : {L.q, L.k, L.v, L.o, L.gate, L.up, L.down, L.attnNorm, L.ffnNorm})
            tr.setWeightOverride(name, nullptr);
        for (const auto& [name, w] : T) {
            tr.setWeightOverride(name, nullptr);
            transformed.replace(name, w);
            result.transformedTensors.push_back(name);
        }
    }
    result.transformed = transformed.finish();
    // Clipping notes of scaled groups, once per distinct reason ("Q4_K chooses its own block scales").
    std::map<std::string, int> clipNotes;
    for (const auto& g : result.groups)
        if (g.scaled && g.clippedTensors == 0 && !g.note.empty())
            ++clipNotes[g.note];
    for (const auto& [note, count] : clipNotes)
        result.notes.push_back(note + " (" + std::to_string(count) + " group" + (count == 1 ? "" : "s") +
                               ")");
    result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    reportProgress(job, 1.0, "done");
    return result;
}

AwqJob::AwqJob(AwqModelParams params) : BasicJob("AWQ calibration", std::move(params)) {}

void AwqJob::execute(JobControl& control)
{
    m_result = runAwq(m_params, &control);
}

} // namespace qs
