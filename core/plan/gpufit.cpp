#include "core/plan/gpufit.h"

#include "core/plan/plan.h"
#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/strings.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

namespace qs {

namespace {

std::string gibText(uint64_t bytes)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2f GiB", static_cast<double>(bytes) / (1ull << 30));
    return buf;
}

// What one GPU holds besides the weights, and what that leaves them.
class Room {
public:
    Room(const ModelLayout& model, const GpuSpec& gpu, const FootprintRequest& base)
        : m_model(model), m_base(requestForGpu(base, gpu)), m_gpuBytes(gpuBudgetBytes(gpu, base.runtime)),
          m_beside(besideBudgetBytes(gpu, base.runtime))
    {
    }
    FootprintRequest request(KvCacheType kv, uint64_t context, uint32_t gpus) const
    {
        FootprintRequest r = m_base;
        r.kvType = kv;
        r.context = context;
        r.gpuCount = std::max<uint32_t>(1, gpus);
        return r;
    }
    // Weight bytes (all GPUs together) the rest leaves; nullopt when the rest alone does not fit.
    std::optional<uint64_t> weightBudget(KvCacheType kv, uint64_t context, uint32_t gpus) const
    {
        uint64_t rest = 0;
        try {
            const Footprint f = estimateFootprint(m_model, WeightSummary{}, request(kv, context, gpus));
            if (f.outsideBudgetBytes > m_beside) // vLLM's CUDA context beside the budget
                return std::nullopt;
            rest = f.totalBytes();
        } catch (const Error& e) {
            if (e.code() != ErrorCode::Overflow)
                throw;
            return std::nullopt;
        }
        if (rest >= m_gpuBytes)
            return std::nullopt;
        const long double total = static_cast<long double>(m_gpuBytes - rest) * std::max<uint32_t>(1, gpus);
        return total >= 1.8e19L ? std::numeric_limits<uint64_t>::max() : static_cast<uint64_t>(total);
    }
    // Per-GPU footprint of `weights` GPU-resident bytes at the context.
    uint64_t total(uint64_t weights, KvCacheType kv, uint64_t context, uint32_t gpus) const
    {
        WeightSummary w;
        w.bytes = weights;
        return estimateFootprint(m_model, w, request(kv, context, gpus)).totalBytes();
    }
    // Longest context for `weights` bytes, capped at the trained context when known.
    uint64_t maxContext(uint64_t weights, KvCacheType kv) const
    {
        WeightSummary w;
        w.bytes = weights;
        uint64_t c = maxContextForBudget(m_model, w, request(kv, m_base.context, m_base.gpuCount), m_gpuBytes);
        if (m_model.config.contextLength > 0)
            c = std::min<uint64_t>(c, m_model.config.contextLength);
        return c;
    }
    uint64_t gpuBytes() const { return m_gpuBytes; }

private:
    const ModelLayout& m_model;
    FootprintRequest m_base;
    uint64_t m_gpuBytes;
    uint64_t m_beside; // usable memory beside the budget (vLLM keeps its CUDA context there)
};

uint64_t smallestPlanBytes(const BudgetProblem& p)
{
    uint64_t b = p.fixedBytes;
    for (const auto& opts : p.options) {
        uint64_t m = std::numeric_limits<uint64_t>::max();
        for (const auto& o : opts)
            m = std::min(m, o.bytes);
        b += opts.empty() ? 0 : m;
    }
    return b;
}

bool withinError(double error, double limit)
{
    return error <= limit + 1e-12 * std::max(1.0, std::abs(limit));
}

// The smallest weight bytes whose best plan has error <= limit: bracketed by the trade-off curve (its LP
// interpolation is a lower bound, its breakpoints are integral optimal plans), then bisected with solves.
std::optional<BudgetSolution> smallestPlanForError(const BudgetProblem& p, double limit, JobControl* job,
                                                   const SolveOptions& options)
{
    const auto curve = tradeoffCurve(p);
    if (curve.empty() || !withinError(curve.back().error, limit))
        return std::nullopt;
    size_t k = 0;
    while (!withinError(curve[k].error, limit))
        ++k;
    uint64_t hi = curve[k].bytes, lo = hi;
    if (k > 0) {
        const auto& a = curve[k - 1];
        const auto& b = curve[k];
        const long double t = (static_cast<long double>(a.error) - limit) /
                              (static_cast<long double>(a.error) - b.error);
        lo = a.bytes + static_cast<uint64_t>(std::floor(t * static_cast<long double>(b.bytes - a.bytes)));
        lo = std::min(lo, hi);
    }
    BudgetSolution best = solveBudget(p, hi, job, options);
    if (!best.feasible || !withinError(best.error, limit))
        return std::nullopt; // cannot happen at a breakpoint; be safe
    hi = best.bytes;
    for (int i = 0; i < 48 && lo < hi; ++i) {
        const uint64_t mid = lo + (hi - lo) / 2;
        BudgetSolution s = solveBudget(p, mid, job, options);
        if (s.feasible && withinError(s.error, limit)) {
            best = std::move(s);
            hi = std::min(mid, best.bytes);
        } else {
            lo = mid + 1;
        }
    }
    return best;
}

} // namespace

std::vector<KvCacheType> kvCandidates(Runtime runtime)
{
    switch (runtime) {
    case Runtime::LlamaCpp:
        return {KvCacheType::F16, KvCacheType::Q8_0, KvCacheType::Q4_0};
    case Runtime::Vllm:
        return {KvCacheType::BF16, KvCacheType::FP8};
    case Runtime::Transformers:
        return {KvCacheType::BF16};
    }
    return {KvCacheType::F16};
}

const char* fitChangeKindName(FitChangeKind kind)
{
    switch (kind) {
    case FitChangeKind::Format:
        return "format";
    case FitChangeKind::Context:
        return "context";
    case FitChangeKind::Gpus:
        return "gpus";
    }
    return "context";
}

BudgetProblem gpuResidentProblem(const BudgetProblem& problem, const ModelLayout& model, Runtime runtime)
{
    BudgetProblem p = problem;
    const WeightSummary w = summarizeWeights(model);
    const bool untied = w.outputHeadBytes > 0;
    std::vector<std::vector<uint64_t>> embeddingShapes;
    for (const auto& t : model.tensors)
        if (planRole(t).role == TensorRole::Embedding)
            embeddingShapes.push_back(t.shape);
    auto offGpu = [&](const std::string& name) {
        const TensorInfo* t = model.find(name);
        if (!t)
            return false;
        const TensorRole role = planRole(*t).role;
        if (role == TensorRole::Embedding)
            return runtime == Runtime::LlamaCpp && untied;
        return role == TensorRole::OutputHead && model.config.tiedEmbeddings &&
               std::find(embeddingShapes.begin(), embeddingShapes.end(), t->shape) != embeddingShapes.end();
    };
    for (size_t i = 0; i < p.options.size(); ++i) {
        const std::vector<std::string> single{i < p.tensors.size() ? p.tensors[i] : std::string()};
        const auto& members = i < p.members.size() && !p.members[i].empty() ? p.members[i] : single;
        if (!members.empty() && std::all_of(members.begin(), members.end(), offGpu))
            for (auto& o : p.options[i])
                o.bytes = 0;
    }
    return p;
}

JointFitResult jointFit(const BudgetProblem& problem, const Plan& plan, const ModelLayout& model,
                        const GpuSpec& gpu, const JointFitRequest& request, JobControl* job)
{
    checkCancel(job);
    JointFitResult r;
    const FootprintRequest& base = request.footprint;
    const uint32_t gpus = std::max<uint32_t>(1, base.gpuCount);
    const Room room(model, gpu, base);
    const BudgetProblem gp = gpuResidentProblem(problem, model, base.runtime.runtime);
    const uint64_t smallest = smallestPlanBytes(gp);

    std::vector<KvCacheType> kvTypes = request.kvTypes.empty() ? kvCandidates(base.runtime.runtime) : request.kvTypes;
    if (!hasAttentionConfig(model.config) && kvTypes.size() > 1)
        kvTypes.resize(1); // no cache to size: the types do not differ
    std::vector<KvCacheType> usable;
    for (KvCacheType t : kvTypes) {
        if (!runtimeSupportsKvType(base.runtime.runtime, t))
            continue;
        try {
            if (hasAttentionConfig(model.config))
                (void)kvBytesPerTokenPerLayer(model.config, t); // a q8_0 / q4_0 row must fill its blocks
        } catch (const Error& e) {
            if (e.code() != ErrorCode::BadValue)
                throw;
            continue;
        }
        usable.push_back(t);
    }
    if (usable.empty())
        throw Error(ErrorCode::BadValue, std::string(runtimeName(base.runtime.runtime)) +
                                             " cannot hold this model's KV cache in any of the requested types");

    std::optional<BudgetSolution> forQuality;
    if (request.maxError) {
        forQuality = smallestPlanForError(gp, *request.maxError, job, request.solve);
        if (forQuality)
            r.weightsForQuality = forQuality->bytes;
    }

    for (KvCacheType t : usable) {
        checkCancel(job);
        KvAlternative a;
        a.kvType = t;
        a.maxContextAnyPlan = room.maxContext(smallest, t);
        if (request.maxError) {
            if (forQuality) {
                a.solution = *forQuality;
                a.weightsBytes = forQuality->bytes;
                a.context = room.maxContext(a.weightsBytes, t);
                a.maxContext = a.context;
                a.fits = a.context > 0;
                if (a.fits) {
                    a.weightBudgetBytes = room.weightBudget(t, a.context, gpus).value_or(0);
                    a.totalBytes = room.total(a.weightsBytes, t, a.context, gpus);
                }
            }
        } else {
            a.context = base.context;
            if (auto budget = room.weightBudget(t, base.context, gpus)) {
                a.weightBudgetBytes = *budget;
                a.solution = solveBudget(gp, *budget, job, request.solve);
                a.fits = a.solution.feasible;
                if (a.fits) {
                    a.weightsBytes = a.solution.bytes;
                    a.totalBytes = room.total(a.weightsBytes, t, a.context, gpus);
                    a.maxContext = room.maxContext(a.weightsBytes, t);
                }
            }
        }
        r.alternatives.push_back(std::move(a));
    }

    // Finest KV type that fits, then a coarser one only when it buys enough.
    const double gain = std::clamp(request.kvSwitchGain, 0.0, 1.0);
    for (size_t i = 0; i < r.alternatives.size(); ++i) {
        const KvAlternative& a = r.alternatives[i];
        if (!a.fits)
            continue;
        if (!r.chosen) {
            r.chosen = i;
            continue;
        }
        const KvAlternative& c = r.alternatives[*r.chosen];
        const bool better = request.maxError
                                ? static_cast<double>(a.context) >= (1.0 + gain) * static_cast<double>(c.context)
                                : a.solution.error <= (1.0 - gain) * c.solution.error && a.solution.error < c.solution.error;
        if (better)
            r.chosen = i;
    }
    char pct[16];
    std::snprintf(pct, sizeof pct, "%.0f%%", 100.0 * gain);
    if (r.chosen) {
        const KvAlternative& c = r.alternatives[*r.chosen];
        const std::string kv = kvCacheTypeName(c.kvType);
        if (*r.chosen == 0 || !r.alternatives.front().fits) {
            r.reason = *r.chosen == 0 ? "KV " + kv + " is the finest cache type and fits"
                                      : "KV " + kv + " is the finest cache type that fits";
            bool coarserFits = false;
            for (size_t i = *r.chosen + 1; i < r.alternatives.size(); ++i)
                coarserFits = coarserFits || r.alternatives[i].fits;
            if (coarserFits)
                r.reason += request.maxError ? std::string("; no coarser one gives ") + pct + " more context"
                                             : std::string("; no coarser one lowers the weight error by ") + pct;
        } else {
            r.reason = "KV " + kv +
                       (request.maxError ? std::string(" gives at least ") + pct + " more context than"
                                         : std::string(" lowers the weight error by at least ") + pct + " below") +
                       " the finer types that fit";
        }
    } else if (request.maxError && !forQuality) {
        r.reason = "no plan with these tiers reaches that error (add a more precise tier)";
    } else {
        r.reason = request.maxError ? "not even one token of context fits with a plan of that quality"
                                    : "no plan with these tiers fits at " + std::to_string(base.context) +
                                          " tokens with any KV cache type";
    }
    if (r.chosen || (request.maxError && !forQuality))
        return r;

    // Nothing fits: the smallest change of each kind.
    const uint64_t context = base.context;
    // A shorter context, with the smallest plan: the longest over the KV types, finest on ties.
    {
        FitChange best;
        best.kind = FitChangeKind::Context;
        for (const auto& a : r.alternatives)
            if (a.maxContextAnyPlan > best.context)
                best.context = a.maxContextAnyPlan, best.kvType = a.kvType;
        if (best.context > 0) {
            best.weightsBytes = smallest;
            best.text = "a context of " + std::to_string(best.context) + " tokens fits (KV " +
                        kvCacheTypeName(best.kvType) + ", the smallest plan of these tiers, " + gibText(smallest) +
                        " on the GPU)";
            r.suggestions.push_back(best);
        }
    }
    // A uniform format: the most precise all-FORMAT plan the target can express that fits at the context.
    {
        FitChange best;
        best.kind = FitChangeKind::Format;
        for (const auto& name : allFormatNames()) {
            checkCancel(job);
            Plan uniform;
            try {
                uniform = makePreset("all-" + name, model, plan.target());
            } catch (const Error&) {
                continue; // the target cannot express it
            }
            const WeightSummary w = summarizeWeights(model, planBytesFn(uniform));
            for (KvCacheType t : usable) {
                FootprintRequest fr = room.request(t, context, gpus);
                uint64_t total = 0;
                try {
                    total = estimateFootprint(model, w, fr).totalBytes();
                } catch (const Error& e) {
                    if (e.code() != ErrorCode::Overflow)
                        throw;
                    continue;
                }
                if (total > room.gpuBytes())
                    continue;
                // GPU-resident bytes, as everywhere in this file (llama.cpp keeps an untied embedding in host memory).
                const uint64_t onGpu = base.runtime.runtime == Runtime::LlamaCpp && w.outputHeadBytes > 0
                                           ? w.bytes - std::min(w.bytes, w.embeddingBytes)
                                           : w.bytes;
                if (best.format.empty() || onGpu > best.weightsBytes)
                    best.format = uniform.preset().substr(4), best.kvType = t, best.weightsBytes = onGpu;
                break; // the finest KV type that fits with this format
            }
        }
        if (!best.format.empty()) {
            best.context = context;
            best.text = "every tensor at " + best.format + " (" + gibText(best.weightsBytes) + " on the GPU, KV " +
                        kvCacheTypeName(best.kvType) + ") fits at " + std::to_string(context) + " tokens";
            r.suggestions.push_back(best);
        }
    }
    // More GPUs (tensor parallel), the smallest plan at the requested context.
    {
        const bool vllm = base.runtime.runtime == Runtime::Vllm;
        bool found = false;
        for (uint32_t n = gpus + 1; n <= 64 && !found; ++n) {
            if (vllm && model.config.heads > 0 && model.config.heads % n != 0)
                continue;
            for (KvCacheType t : usable) {
                auto budget = room.weightBudget(t, context, n);
                if (!budget || *budget < smallest)
                    continue;
                FitChange g;
                g.kind = FitChangeKind::Gpus;
                g.gpus = n;
                g.kvType = t;
                g.context = context;
                g.weightsBytes = smallest;
                g.text = std::to_string(n) + " x " + gpu.name + " hold it at " + std::to_string(context) +
                         " tokens (KV " + kvCacheTypeName(t) + ", the smallest plan of these tiers)";
                r.suggestions.push_back(g);
                found = true;
                break;
            }
        }
    }
    return r;
}

} // namespace qs
