#pragma once
// Activation-aware weight quantization (AWQ, Lin et al. 2023): per group of linear layers that read the same
// input, a per-input-channel scale s that moves quantization error away from the channels with large
// activations, and (for integer formats) a clipping range per quantization group.
//
// Scale search: s = max(mean|x|, 1e-4)^α, normalised by sqrt(max s * min s) as AWQ does, for α on a grid
// (0, 1/grid, ..., 1), and (AutoAWQ's duo scaling, on by default) s = mean|x|^α / (mean ŵ^(1−α) + 1e-4)
// with ŵ the weights' magnitude relative to their quantization group's largest. For each candidate every
// layer of the group is quantized as Q(W·diag(s))·diag(1/s) with the target format's own round trip
// (QuantFormat::roundTrip: integer groups and ggml types alike) and the group's output error
// sum ||Ŵ X − W X||² over the calibration inputs X is measured; the smallest wins (plain α = 0 is s = 1,
// round-to-nearest itself, so the result is never worse than RTN on the calibration data and rows measured).
//
// Cost: the grid search's error products dominate (2 x weights x tokens flop per point), so the search
// measures them on a sample of each large tensor's output rows (sampleWeights) and walks the grid coarse to
// fine where asked (coarse). Tensors of up to sampleWeights weights (every tensor of
// stories260K and code-3m) are measured on every row, exactly. Same input, same result: the work items are
// independent and summed in a fixed order, whatever the thread count.
//
// Clip search (integer formats with groups or per-row scales only): for each (row, group) of the scaled
// weights, the largest |w| is shrunk by ratios 1, 1 − 1/clipGrid, ..., 1 − maxShrink, the weights are clamped
// to ±ratio·max|w|, and the ratio with the smallest output error of that group is kept. ggml types choose
// their own scales inside a block (k-quants search them), and per-tensor integer scales are not per group:
// both skip clipping and say so. The clipped result is kept only when it lowers the layer's total error.
//
// Folding the scales (the model must compute the same function): the preceding op's output channel j is
// divided by s_j — an RMSNorm weight (q/k/v after attn_norm, gate/up after ffn_norm), v's rows (o; with
// grouped-query attention only when every query head sharing a kv head has the same scales, see
// tieQueryHeads), up's rows (down). The helpers below do the arithmetic; core/infer/awqmodel.h applies
// them to a model.

#include "core/quant/format.h"

#include <Eigen/Core>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qs {

class JobControl;

// One linear layer of a group: rows x cols row-major weights (out x in) and its target format (nullptr:
// kept in float, contributes no error).
struct AwqLinear {
    std::string name;
    const float* weights = nullptr;
    uint64_t rows = 0;
    uint64_t cols = 0;
    std::shared_ptr<const QuantFormat> format;
};

struct AwqOptions {
    int grid = 20;           // α steps: 0, 1/grid, ..., 1
    // Coarse-to-fine: every coarse-th α of each family first (0 and 1 included), then the skipped grid
    // points next to each family's best; the others stay NaN in alphaErrors / duoErrors. 1 (default): the
    // whole grid. 2 evaluates 26 of 42 points but misses the narrow minima a ggml type's own scale search
    // makes in the error curve (code-3m blk 2 o under Q4_K: its only gain over RTN, 0.2 %, at duo α 0.25).
    int coarse = 1;
    // The output error of a tensor with more than this many weights is measured on an evenly spread sample
    // of its output rows (sampleWeights / cols of them, whole rowAlignment blocks) and scaled by
    // rows / sampled rows; the error is a sum over rows, the chosen scales apply to all of them. 0: every row.
    uint64_t sampleWeights = uint64_t(1) << 18;
    bool scale = true;       // false: the scales cannot be folded; s = 1, search the clipping only
    // Also search AutoAWQ's "duo" family s = mean|x|^α / (mean ŵ^(1−α) + 1e-4), ŵ = |w| / the largest |w| of
    // its quantization group, averaged over the group's output rows; the better family wins.
    bool duo = true;
    // o under grouped-query attention: heads query heads of headDim share kvHeads kv heads; when set, both
    // statistics are averaged over the query heads of each kv head (tieQueryHeads) so that the scales fold
    // into v's rows. 0: no tying.
    uint32_t tieHeads = 0, tieKvHeads = 0, tieHeadDim = 0;
    bool clip = true;        // search clipping ranges (integer formats)
    int clipGrid = 20;       // shrink step 1/clipGrid
    double maxShrink = 0.5;  // the smallest ratio tried is 1 - maxShrink
    unsigned threads = 0;    // resolveThreads() policy
};

struct AwqLayerResult {
    std::string name;
    // What the format should quantize: W·diag(s), clamped by the chosen clip ratios. The model computes
    // with Q(weights)·diag(1/s) (awqDequantized), i.e. the scales are folded into the preceding op.
    std::vector<float> weights;
    std::vector<float> clipRatios; // per (row, group), row-major; empty when no clipping was applied
    int groupsPerRow = 0;          // of clipRatios
    std::string clipNote;          // why clipping was not searched or not kept (empty when applied)
    double errorRtn = 0;           // ||Q(W) X − W X||²
    double errorScaled = 0;        // with the chosen scales, before clipping
    double errorAfter = 0;         // the final result
};

struct AwqGroupResult {
    std::vector<float> scales;       // per input channel (cols)
    double alpha = 0;                // the chosen exponent
    bool duo = false;                // the chosen scales are of the duo family
    // The group's error at each grid point (mean|x|^α), NaN where the coarse-to-fine walk did not go.
    // Errors are on the sampled rows scaled to the whole tensors (exact when nothing was sampled).
    std::vector<double> alphaErrors;
    std::vector<double> duoErrors;   // the same for the duo family (empty when not searched)
    double errorRtn = 0;             // the group's output error with round-to-nearest
    double errorScaled = 0;          // after the scale search
    double errorAfter = 0;           // after the clip search
    std::vector<AwqLayerResult> layers;
};

// Searches scales and clipping for a group of layers that share the input x (cols x tokens, a sample of the
// calibration tokens); meanAbs: per input channel the mean |x| over all calibration tokens. Every layer must
// have cols == x.rows() and a format that supports its shape. Cancel is checked between grid points.
// Throws qs::Error(BadValue) for inconsistent shapes.
AwqGroupResult awqSearch(const std::vector<AwqLinear>& layers, const Eigen::MatrixXf& x,
                         const Eigen::VectorXf& meanAbs, const AwqOptions& options = {},
                         JobControl* job = nullptr);

// Q(scaledWeights)·diag(1/scales): the weights the folded model effectively computes with, rows x cols.
std::vector<float> awqDequantized(const std::vector<float>& scaledWeights, uint64_t rows, uint64_t cols,
                                  const std::vector<float>& scales, const QuantFormat& format);

// Output error ||(a − b) X||² (float64 sums) of two rows x cols row-major weights on inputs X (cols x n).
double awqOutputError(const float* a, const float* b, uint64_t rows, uint64_t cols, const Eigen::MatrixXf& x);

// ---- folding ----

// w (rows x cols) := w·diag(s).
void scaleColumns(std::vector<float>& w, uint64_t rows, uint64_t cols, const std::vector<float>& s);
// w (rows x cols) := diag(1/s)·w: the previous layer's output channels (v for o, up for down).
void divideRows(std::vector<float>& w, uint64_t rows, uint64_t cols, const std::vector<float>& s);
// RMSNorm weight g := g / s.
void divideNorm(std::vector<float>& g, const std::vector<float>& s);

// With grouped-query attention o's input channel (head h, dim d) reads v's row (h / (heads/kvHeads), d):
// the per-v-row scales when every query head sharing a kv head has the same scales, else nullopt with the
// reason in *why.
std::optional<std::vector<float>> kvHeadScales(const std::vector<float>& oScales, uint32_t heads,
                                               uint32_t kvHeads, uint32_t headDim, std::string* why = nullptr);
// o's activation statistic averaged over the query heads that share a kv head, so that the searched scales
// are the same for all of them and fold into v (AWQ's o/v pair under grouped-query attention).
Eigen::VectorXf tieQueryHeads(const Eigen::VectorXf& meanAbs, uint32_t heads, uint32_t kvHeads,
                              uint32_t headDim);

} // namespace qs
