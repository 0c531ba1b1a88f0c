#pragma once
// Fit to a GPU, jointly: the weight formats (the budget problem of budget.h) and the KV-cache type, for a
// requested context, or the longest context for a requested quality. Each KV type the runtime can hold
// (llama.cpp: f16, q8_0, q4_0; vLLM: bf16 ("auto"), fp8; transformers: bf16) is one alternative on the
// trade-off curve: the bytes the cache and the runtime leave the weights at that context, the best plan
// for them, and the longest context that plan and the smallest plan allow. When nothing fits, the smallest
// change of each kind that would: a uniform format, a shorter context, more GPUs. See docs/plan-schema.md.
//
// Pure and single-threaded; a solve per KV type (and a bisection of solves in quality mode), so run it off
// the UI thread (GpuFitJob in core/jobs/gpufitjob.h). Polls JobControl::cancelled().

#include "core/plan/budget.h"
#include "core/plan/gpucatalog.h"
#include "core/plan/memory.h"

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace qs {

class JobControl;

// The KV-cache types a runtime can hold, finest first (what "--kv-type auto" chooses among).
std::vector<KvCacheType> kvCandidates(Runtime runtime);

struct JointFitRequest {
    // Context, batch, runtime, GPU count; its kvType is ignored (kvTypes decides).
    FootprintRequest footprint;
    // Candidate KV types, finest first; empty: kvCandidates(runtime). One entry fixes the type.
    std::vector<KvCacheType> kvTypes;
    // Quality mode: the longest context whose best plan has at most this error (footprint.context is then
    // only the fallback for the suggestions). nullopt: the best plan at footprint.context.
    std::optional<double> maxError;
    // A coarser KV type is chosen over the finer one before it only when it buys at least this much: the
    // best plan's error lower by this share (context mode), or this much more context (quality mode).
    double kvSwitchGain = 0.10;
    SolveOptions solve;
};

struct KvAlternative {
    KvCacheType kvType = KvCacheType::F16;
    uint64_t context = 0; // the context this alternative is for (requested, or the longest at the quality)
    bool fits = false;    // a plan fits at `context` (quality mode: the context is > 0)
    // Weight bytes on the GPUs (all of them together) that the cache and the runtime leave at `context`.
    uint64_t weightBudgetBytes = 0;
    BudgetSolution solution; // the best plan for that budget (choice indices of the problem given)
    uint64_t weightsBytes = 0; // GPU-resident weight bytes of that plan (all GPUs)
    uint64_t totalBytes = 0;   // per-GPU footprint of that plan at `context`
    uint64_t maxContext = 0;   // longest context of that plan (capped at the trained context when known)
    // Longest context of the smallest plan the tiers allow: how far this KV type can go at all.
    uint64_t maxContextAnyPlan = 0;
};

enum class FitChangeKind : uint8_t { Format, Context, Gpus };
const char* fitChangeKindName(FitChangeKind kind); // "format", "context", "gpus"

// A change that makes the request fit (all else as requested, the tiers' smallest plan unless a format).
struct FitChange {
    FitChangeKind kind = FitChangeKind::Context;
    std::string format;   // Format: the most precise uniform format (all-FORMAT) that fits
    uint64_t context = 0; // Context: the longest context that fits
    uint32_t gpus = 0;    // Gpus: the fewest GPUs that hold it
    KvCacheType kvType = KvCacheType::F16;
    uint64_t weightsBytes = 0; // GPU-resident weights of that plan (all GPUs)
    std::string text;          // one sentence for users
};

struct JointFitResult {
    std::vector<KvAlternative> alternatives; // one per candidate, finest first
    std::optional<size_t> chosen;            // the alternative taken; nullopt when none fits
    std::string reason;                      // why that one (or why none)
    // Quality mode: the GPU-resident weight bytes of the smallest plan reaching the quality (0: none does).
    uint64_t weightsForQuality = 0;
    std::vector<FitChange> suggestions; // when nothing fits
};

// The budget problem with the bytes each item takes on the GPU: under llama.cpp the token embedding of an
// untied model lives in host memory (0 bytes), and the head of a tied model that duplicates the embedding
// is not loaded twice (0 bytes), as in summarizeWeights / estimateFootprint.
BudgetProblem gpuResidentProblem(const BudgetProblem& problem, const ModelLayout& model, Runtime runtime);

// `plan` supplies the target and tiers for the format suggestion; `problem` is makeBudgetProblem's for it.
// Throws qs::CancelledError when cancelled.
JointFitResult jointFit(const BudgetProblem& problem, const Plan& plan, const ModelLayout& model,
                        const GpuSpec& gpu, const JointFitRequest& request, JobControl* job = nullptr);

} // namespace qs
