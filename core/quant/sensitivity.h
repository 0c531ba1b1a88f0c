#pragma once
// The sensitivity matrix: for every quantizable tensor and every candidate format, the round-trip error and
// the exact stored size. Every later tier decision reads these numbers.
//
// A tensor is measured as the matrix a runtime quantizes (core/model/matrixview.h): one row per output
// channel, so per-row scales and blocks run along the input axis in every layout. PyTorch / safetensors /
// GGUF weights as stored; Keras kernels [..., in, out] and Paddle Linear "*.w_0" [in, out] transposed (a
// bounded window of rows at a time); convolution kernels flattened, OIHW [out, in, kh, kw] into rows of
// in·kh·kw, Keras [kh, kw, in, out] into rows of kh·kw·in. A cell's rows and cols are that matrix's.
//
// Work runs on a pool of worker threads, one tensor at a time per worker. Tensors with cached cells come
// first (their cells arrive at once), then the smallest tensors (so that cells appear early and spread over
// every block of the model, instead of one huge embedding or head first); the order changes only when cells
// arrive, never their values or the returned list. A tensor is
// decoded in row chunks of bounded size (per-tensor-scaled formats get the tensor's range from a first pass,
// NF4 chunks keep its 64-value blocks whole), so memory stays at a few chunk buffers per worker whatever the
// model size. Cells are streamed through the callback as soon as they are known: cached and unsupported cells
// of a tensor before its weights are read, the measured ones when its last chunk is done (every format of a
// tensor shares one decoding pass, so they finish together).
//
// Sampling: with options.exact false, a tensor of many rows is measured on a deterministic simple random
// sample of its row groups (groups of the formats' row alignment, so blocks that span rows stay whole; rows are
// independent for every format once a per-tensor range is known, which a cheap full pass still provides).
// The sample's size is max(sampleMinRows, sampleFraction * rows); a tensor whose sample would cover half its
// rows or more is measured exactly. A sampled cell carries `sample`: the fraction measured and 95 % confidence
// intervals of MSE, SQNR and the importance-weighted MSE (ratio estimators with their linearised standard
// error and the finite-population correction, docs/sensitivity.md). Its metrics hold the point estimates;
// maxAbsErr is the largest error seen in the sample (a lower bound). The sample depends on the seed, the
// tensor's name and shape only, so the same options give the same cells.
//
// Cache: with useCache, cells are kept in a JSON file in the analysis cache directory (beside the statistics
// cache; one file per model, named by a hash of its path). Entries are keyed by every model file's path, size
// and modification time, and each cell by tensor name, dtype, shape, format and a hash of the importance
// vector it was computed with; a sampled cell's key adds the sampling parameters, so it is never taken for
// an exact one (a sampled run takes an exact cached cell when there is one). A cell found there is returned (fromCache) without touching the weights; a
// stale, foreign or malformed file is ignored and rewritten. Cells that failed are never cached.

#include "core/quant/metrics.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <optional>
#include <functional>
#include <string>
#include <vector>

namespace qs {

class JobControl;
class Model;
class ImportanceMatrix;
struct TensorInfo;

// How a sampled cell was measured and the confidence intervals of its estimates.
struct SensitivitySample {
    uint64_t rowsMeasured = 0;
    double fraction = 1;        // rowsMeasured / rows
    double confidence = 0.95;   // level of the intervals
    double mseLow = 0, mseHigh = 0;
    double sqnrLowDb = 0, sqnrHighDb = 0; // +inf high end when the interval reaches an error of 0
    std::optional<double> weightedMseLow, weightedMseHigh;
};

struct SensitivityResult {
    std::string tensor;
    std::string format; // canonical format name
    uint64_t rows = 0;
    uint64_t cols = 0;
    uint64_t bytes = 0; // exact stored size in the format (0 when unsupported)
    double bitsPerWeight = 0;
    ErrorMetrics metrics; // weightedMse set when importance was available for the tensor
    std::string error; // non-empty when the cell could not be computed (shape not supported, codec missing)
    bool fromCache = false;
    std::optional<SensitivitySample> sample; // set for a sampled (estimated) cell; exact cells have none
    bool isSampled() const { return sample.has_value(); }
    // Set for a measured end-to-end cell (core/infer/klsensitivity.h): the increase of the output's KL
    // divergence, nats; metrics.sqnrDb then holds its score −10·log10(ΔKL). NaN for weight-error cells.
    double deltaKl = std::numeric_limits<double>::quiet_NaN();
    bool isDeltaKl() const { return !std::isnan(deltaKl); }
    bool ok() const { return error.empty(); }
};

// The order tensors are measured in (see above); only the order of the callback's cells depends on it.
enum class SensitivityOrder { SmallestFirst, LargestFirst, ModelOrder };

struct SensitivityOptions {
    std::vector<std::string> formats; // empty: defaultSensitivityFormats()
    const ImportanceMatrix* importance = nullptr;
    // Quantize with the importance vector where the format supports it (ggml k-quants / IQ4), as
    // llama-quantize --imatrix does; the weighted metric is reported either way.
    bool importanceWeightedQuantization = true;
    // Further restricts the candidates (e.g. a name regex); candidates already satisfy
    // isSensitivityCandidate.
    std::function<bool(const TensorInfo&)> tensorFilter;
    SensitivityOrder order = SensitivityOrder::SmallestFirst; // tensors with cached cells always go first
    unsigned threads = 0;                       // 0: resolveThreads() (the process default)
    uint64_t chunkElements = uint64_t(1) << 22; // target values per row chunk (16 MiB of float)
    bool useCache = false;
    // Exact: every row (the library default). The GUI and the CLI sample by default (see above).
    bool exact = true;
    double sampleFraction = 1.0 / 16;
    uint64_t sampleMinRows = 256;
    uint64_t sampleSeed = 0;
    std::filesystem::path cacheDir; // empty: cacheDirectory() ($QUANTSCOPE_CACHE_DIR ...)
};

// The cache file computeSensitivity uses for this model (empty when no cache directory is known).
std::filesystem::path sensitivityCacheFile(const Model& model, const std::filesystem::path& cacheDir = {});

// A tensor the matrix covers: two dimensions (or a convolution kernel of any rank), decodable dtype, and a
// quantizable role (roleIsQuantizable), a convolution kernel or an unclassified one (TensorRole::Other):
// outside the known LLM namings (e.g. PaddleOCR's linear_N.w_0) a 2-D weight is a matmul weight, while norms
// and biases are 1-D. Stacked 3-D+ tensors that are not kernels (all experts of a layer) are not covered.
bool isSensitivityCandidate(const TensorInfo& tensor);
// Why a tensor is not in the matrix (empty when it is), for the GUI and the CLI to say so.
std::string sensitivitySkipReason(const TensorInfo& tensor);

// Called from worker threads, one call at a time.
using SensitivityCallback = std::function<void(const SensitivityResult&)>;

// Computes the matrix; results are ordered by the model's tensor order, then the format list. Throws
// qs::Error for an unknown format name, qs::CancelledError when cancelled.
std::vector<SensitivityResult> computeSensitivity(const Model& model, const SensitivityOptions& options,
                                                  const SensitivityCallback& onResult = {},
                                                  JobControl* job = nullptr);

} // namespace qs
