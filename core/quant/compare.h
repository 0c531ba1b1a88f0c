#pragma once
// Compares the tensors of two opened models value by value: an original and its quantized (or otherwise
// converted) copy, in any pair of formats our loaders read — a GGUF and its llama-quantize output, a
// safetensors checkpoint and our compressed-tensors / GPTQ / fake-quant output, a Hugging Face checkpoint and
// a GGUF of it (names matched through the GGUF <-> Hugging Face mapping).
//
// Per tensor: the error metrics of the candidate against the reference (SQNR, RMSE, max |Δ|, cosine) and the
// exact histogram of the difference Δ = candidate − reference on the statistics grid (core/stats/histogram.h),
// so the GUI can draw it at any range and bin count. Streaming: both tensors are decoded in row chunks of
// bounded size, rows split across the workers of the one thread pool; memory is a few chunks per worker plus
// one dense count table per worker. Results stream through a ResultQueue as each tensor finishes.
//
// A tensor is compared when both sides have it (same name, else the mapped name) with the same number of
// elements and a dtype we decode; everything else is listed with the reason. The q and k rows that llama.cpp's
// converter permutes (rope on adjacent pairs rather than halves) are matched through that permutation when one
// side has GGUF names and the other Hugging Face names (head counts from the reference's configuration).

#include "core/model/model.h"
#include "core/quant/metrics.h"
#include "core/stats/histogram.h"
#include "core/util/job.h"

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qs {

struct TensorComparison {
    std::string reference;   // tensor name in the reference model
    std::string candidate;   // its name in the candidate model
    std::string referenceType, candidateType; // dtype names as stored
    uint64_t rows = 0, cols = 0;
    ErrorMetrics metrics;    // candidate against reference
    Histogram difference;    // candidate − reference, exact on the grid
    HistogramBounds differenceBounds; // the difference's exact min and max
    bool ropePermuted = false; // q/k of a GGUF / Hugging Face pair: rows matched through llama.cpp's permutation
    std::string error;       // non-empty when it could not be compared (the reason)
    bool ok() const { return error.empty(); }
};

struct CompareParams {
    std::shared_ptr<const Model> reference;
    std::shared_ptr<const Model> candidate;
    std::filesystem::path candidatePath; // opened by the job when `candidate` is null
    std::function<bool(const TensorInfo&)> filter; // reference tensors to compare; empty: every tensor
    unsigned threads = 0;                          // resolveThreads() policy
    uint64_t chunkElements = uint64_t(1) << 22;    // values per row chunk
};

struct CompareResult {
    std::shared_ptr<const Model> candidate;       // the model compared against (opened by the job or given)
    std::vector<TensorComparison> tensors;        // reference order; failed ones carry their error
    std::vector<std::string> onlyInCandidate;     // candidate tensors no reference tensor matched
};

// The candidate tensor matching a reference tensor: the same name, else the GGUF <-> Hugging Face mapping;
// nullptr when none.
const TensorInfo* matchingTensor(const Model& candidate, const TensorInfo& reference);

// Compares; throws qs::CancelledError when cancelled. onTensor is called from worker threads, one call at a
// time, as each tensor finishes.
CompareResult compareModels(const CompareParams& params, JobControl* job = nullptr,
                            const std::function<void(const TensorComparison&)>& onTensor = {});

class CompareJob final : public BasicJob<CompareParams, CompareResult> {
public:
    explicit CompareJob(CompareParams params);
    ResultQueue<TensorComparison>& finishedTensors() { return m_finished; }

protected:
    void execute(JobControl& control) override;

private:
    ResultQueue<TensorComparison> m_finished;
};

} // namespace qs
