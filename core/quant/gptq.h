#pragma once
// GPTQ (Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for Generative
// Pre-trained Transformers") for one linear layer, with the semantics of the original implementation
// (IST-DASLab/gptq, gptq.py fasterquant + quant.py Quantizer, perchannel, mse=False), written here from the
// paper and that description; checked against the original's results in tests/core/tst_gptq.cpp.
//
// W is rows (output features) x cols (input features), row-major; H = 2/n * sum x x^T over n calibration
// inputs x (cols x cols, HessianAccumulator). Steps:
// 1. per-channel grids (groupSize -1) come from the original W; dead inputs (H_ii == 0) get H_ii = 1 and
//    their W column zeroed; act-order permutes the columns by decreasing diag(H);
// 2. dampening: H += percDamp * mean(diag H) * I; U = the upper Cholesky factor of H^-1 (U^T U = H^-1);
// 3. columns in blocks of blockSize: each column is quantized with the current grid, its error
//    (w - q) / U_ii is spread over the block's later columns at once and over the rest of the row lazily
//    (one matrix product per block). With groups (not static), a group's grid (per row: min/max including 0,
//    asymmetric zero = round(-min / scale), symmetric zero = (maxq + 1) / 2, codes clamped to [0, maxq],
//    see core/quant/int_quant.h) is computed when its first column comes up, from W as updated by the earlier
//    blocks (not by the current block's earlier columns, as in the original). Static groups: the grids of
//    the columns' original groups, from W before any update.
// ggml block types (GptqConfig::ggml, see core/quant/gptq_ggml.h and docs/gptq.md): the same sweep, with
// the grid of each block / super-block chosen when its first column comes up, per row, by our ggml
// quantizer for that type run on the block's values as the error feedback of every earlier column left
// them (the lazy-update block is a multiple or a divisor of the ggml block, so these are exact); each
// column is then rounded to the nearest level of that fixed grid, and at the end the levels are packed with
// the quantizer's scale bytes into exactly the ggml block bytes (GptqResult::ggmlBlocks). Static groups:
// the grids come from the unquantized W (round-to-nearest's scales, GPTQ's levels). Act-order is refused
// (columns must stay in block order).
// Rows are independent given H: the work is split over row chunks on the ThreadPool (each chunk runs the
// whole column sweep); the Hessian inverse is a Cholesky plus a parallel triangular inverse. Matrix
// products use Eigen compiled for the best instruction set the CPU has (AVX-512, AVX2+FMA or the baseline, chosen
// at run time); Eigen itself never starts threads (no OpenMP).

#include "core/model/dtype.h"

#include <cstdint>
#include <string_view>
#include <optional>
#include <vector>

namespace qs {

class JobControl;

struct GptqConfig {
    int bits = 4;        // 2..8
    int groupSize = 128; // > 0: columns per group; -1: one grid per output row (per channel)
    bool symmetric = false;
    bool actOrder = false;     // quantize columns by decreasing H_ii (g_idx then records each column's group)
    bool staticGroups = false; // groups' grids from the unquantized W in original column order
    double percDamp = 0.01;    // dampening, as a fraction of the mean diagonal of H
    int blockSize = 128;       // lazy-update block
    unsigned threads = 0;      // 0: the process default (resolveThreads)
    bool measureError = true;  // compute proxyError / proxyErrorRtn (two more rows x cols^2 products)
    bool keepRounded = false;  // fill GptqResult::rounded (for analysis and tests: where ties were)
    // A ggml block type (gptq_ggml::codecFor must know it): quantize into its blocks instead of an
    // integer grid; bits, groupSize and symmetric are then unused.
    std::optional<DType> ggml;
    // ggml only: llama.cpp's importance (cols entries, an imatrix vector) for the block quantizer's
    // weighted scale search, as llama-quantize uses it; empty: the unweighted search.
    std::vector<float> importance;
};

// The GPTQ settings of an integer format name ("INT4-g128-asym", "INT8-ch-sym") or of a ggml type GPTQ
// supports ("Q4_K", ...: ggml set); nullopt for any other format (other ggml types, FP8, NF4, per-tensor
// INT).
std::optional<GptqConfig> gptqConfigForFormat(std::string_view formatName);

struct GptqResult {
    int rows = 0;
    int cols = 0;
    int groups = 0;                 // grids per row (1 for per channel)
    std::vector<float> dequantized; // rows x cols, row-major: scale * (code - zero)
    std::vector<uint8_t> codes;     // rows x cols, in [0, 2^bits - 1]
    std::vector<float> scales;      // groups x rows (group-major, as GPTQ checkpoints store them)
    std::vector<float> zeros;       // groups x rows, integers in [0, 2^bits - 1] (as floats)
    std::vector<int32_t> gIdx;      // cols: the group of each original column
    std::vector<int32_t> perm;      // cols: quantization order (perm[k] = the k-th column quantized)
    // With keepRounded: rows x cols, the value each weight had (after the error feedback of the columns
    // before it) when it was rounded — code = clamp(round(rounded / scale) + zero).
    std::vector<float> rounded;
    // ggml: rows x (cols / block values) blocks, exactly the tensor's GGUF data; codes then hold each
    // value's level in its block (and scales / zeros are empty, groups = blocks per row).
    std::vector<uint8_t> ggmlBlocks;
    double loss = 0;                // the original's "error": sum (w - q)^2 / U_ii^2 / 2
    // tr((W - Q) H (W - Q)^T) with the undamped H, for GPTQ and for round-to-nearest on the same grid
    // convention (groups from the original W; ggml: our ggml quantizer on the original W with the same
    // importance); NaN when !measureError.
    double proxyError = 0;
    double proxyErrorRtn = 0;
};

// Quantizes w (rows x cols) with the input Hessian h (cols x cols, symmetric). Throws qs::Error
// (BadValue) for an invalid config or sizes, a non-finite H diagonal, or a dampened H that is not
// positive definite;
// CancelledError when job is cancelled.
GptqResult gptqQuantize(const float* w, int rows, int cols, const float* h, const GptqConfig& config,
                        JobControl* job = nullptr);

// The instruction set GPTQ's matrix products run with on this CPU ("avx512", "avx2", "baseline").
const char* gptqKernelName();

// tr(D H D^T) for D = a - b (rows x cols), in float products with double sums, on the ThreadPool.
double gptqProxyError(const float* a, const float* b, int rows, int cols, const float* h, unsigned threads = 0);

// H = 2/n * sum x x^T over every input row x seen so far, updated in the running form of the original
// (H *= n / (n + m); H += 2/(n + m) * sum of the m new rows' x x^T), so it is the same at any batching.
class HessianAccumulator {
public:
    explicit HessianAccumulator(int cols);
    // rows x cols inputs, row-major.
    void add(const float* x, int64_t rows);
    int cols() const { return m_cols; }
    int64_t samples() const { return m_samples; }
    // The full symmetric matrix, cols x cols row-major.
    std::vector<float> hessian() const;

private:
    int m_cols;
    int64_t m_samples = 0;
    std::vector<float> m_lower; // cols x cols column-major; the lower triangle is kept up to date
};

} // namespace qs
