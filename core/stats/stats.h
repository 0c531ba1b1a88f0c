#pragma once
// Weight statistics: what users look at first (which layers have outliers, how wide each distribution is,
// which channels dominate). One streaming pass over each tensor's memory-mapped data computes everything
// below; whole models are analysed in parallel, results stream out per tensor and are cached on disk.
//
// Numerics: moments are accumulated in double per cache-sized block about a shift near the block's mean,
// then combined with the exact pairwise update of Chan et al. / Pébay for M2..M4, so the result does not
// depend on thread count and does not suffer from cancellation (1e6 + N(0, 1) keeps full precision).
// 16- and 8-bit types (BF16, F16, FP8, I8, U8, BOOL) are counted per bit pattern instead, which makes
// every tensor statistic exact up to the final double arithmetic — including the 3σ / 6σ shares — in one
// pass. Other types need a second pass, over the same tensor right after the first while its pages are
// still cached, to count values beyond 3σ / 6σ exactly.
//
// Non-finite values (NaN, ±Inf) are counted, and excluded from every other statistic.

#include "core/model/dtype.h"
#include "core/stats/histogram.h"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

namespace qs {

class JobControl;
class Model;
struct TensorInfo;

struct TensorStats {
    std::string name;
    DType dtype = DType::F32;
    std::vector<uint64_t> shape;

    uint64_t count = 0;  // elements, including non-finite ones
    uint64_t finite = 0; // count - nan - inf; the population of everything below
    uint64_t zeros = 0, nan = 0, inf = 0;
    double min = 0, max = 0, absmax = 0; // over finite values (NaN when finite == 0)
    double mean = 0;
    double std = 0;      // population standard deviation (divides by n)
    double kurtosis = 0; // excess kurtosis n·M4 / M2² − 3; NaN when std == 0
    // Central moment sums Σ(x − mean)^k, kept so that groups of tensors can be combined (mergeStats).
    double m2 = 0, m3 = 0, m4 = 0;
    // Finite values with |x − mean| > 3·std (resp. 6·std).
    uint64_t beyond3Sigma = 0, beyond6Sigma = 0;

    Histogram histogram;

    // Per output channel. A channel is one row of the tensor viewed as rows() x columns(), except for 4-D+
    // tensors (OIHW convolution kernels), where it is everything under one index of the first dimension, and
    // for channels-last layouts (Keras kernels [..., in, out], Paddle Linear "*.w_0" [in, out]), where it is
    // one index of the last dimension. channelLength = values per channel.
    uint64_t channelLength = 0;
    std::vector<float> channelAbsmax; // 0 for a channel without finite values
    std::vector<float> channelStd;    // population std over the channel's finite values

    bool fromCache = false;
    std::string error; // non-empty when the tensor could not be analysed (e.g. an undecodable type)

    double share3Sigma() const { return finite ? double(beyond3Sigma) / double(finite) : 0.0; }
    double share6Sigma() const { return finite ? double(beyond6Sigma) / double(finite) : 0.0; }
    // `bins` equal bins over [min, max].
    BinnedHistogram linearHistogram(size_t bins) const;
    // `bins` symmetric-log bins over [min, max]; linthresh <= 0 picks the standard deviation.
    BinnedHistogram symlogHistogram(size_t bins, double linthresh = 0) const;
};

// Statistics of the union of groups of values (e.g. every ffn_down): exact counts and histogram,
// Chan/Pébay-combined moments. Channel arrays are concatenated. Name, dtype and shape are left empty.
TensorStats mergeStats(const std::vector<const TensorStats*>& parts);

struct StatsOptions {
    unsigned threads = 0;           // worker threads; 0: resolveThreads() (the process default)
    bool useCache = true;           // analyzeModel only
    std::filesystem::path cacheDir; // empty: $QUANTSCOPE_CACHE_DIR, else <XDG cache>/quantscope/stats
    std::vector<size_t> tensors;    // analyzeModel: indices into model.tensors(); empty: all
    size_t chunkBytes = 32u << 20;  // unit of parallel work (tests shrink it)
};

// Statistics of one tensor, computed now (no cache), using options.threads workers.
// Throws qs::CancelledError when cancelled, qs::Error when the dtype cannot be decoded.
TensorStats computeTensorStats(const Model& model, const TensorInfo& tensor, const StatsOptions& options = {},
                               JobControl* job = nullptr);

// Called once per tensor as soon as it is done (cached ones first), from a worker thread; calls are
// serialised. index is the tensor's index in model.tensors().
using TensorStatsCallback = std::function<void(size_t index, const TensorStats& stats)>;

// Statistics of every selected tensor, in parallel, in the order of options.tensors (or model order).
// Tensors that fail (undecodable types) come back with `error` set. Progress is reported to `job` as the
// fraction of bytes read; cancelling returns within a few milliseconds by throwing qs::CancelledError
// (what was finished by then is still written to the cache). Uses and refreshes the cache unless
// options.useCache is false.
std::vector<TensorStats> analyzeModel(const Model& model, const StatsOptions& options = {},
                                      JobControl* job = nullptr,
                                      const TensorStatsCallback& onTensorDone = {});

} // namespace qs
