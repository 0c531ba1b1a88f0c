#pragma once
// Error of a quantized tensor against its original, the numbers every format decision rests on.
// With x the original, y the round trip and e = y - x over n = rows * cols values (all sums in double):
//   mse        = sum e^2 / n
//   rel_mse    = sum e^2 / sum x^2                  (mse / mean(x^2); 0 when both are 0, +inf when x is 0)
//   sqnr_db    = 10 log10(sum x^2 / sum e^2)        (+inf when e is 0)
//   max_abs    = max |e|
//   cosine     = sum x y / sqrt(sum x^2 * sum y^2)  (1 when both are all zero, 0 when only one is)
// Importance-weighted MSE, with imp_j >= 0 per input column (llama.cpp's imatrix: the mean squared
// activation of column j):
//   weighted_mse = sum_i sum_j imp_j e_ij^2 / (rows * sum_j imp_j)
// The numerator is what llama.cpp's importance-weighted quantizers minimise (sum_j imp_j e_j^2 per row);
// it is also the expected squared output error of each row when the inputs are uncorrelated with
// E[a_j^2] = imp_j (the diagonal part of GPTQ's tr(E H E^T)). Dividing by rows * sum_j imp_j makes it an MSE:
// a constant importance gives exactly mse, so the two can share a colour scale.

#include <cstdint>
#include <optional>

namespace qs {

struct ErrorMetrics {
    uint64_t count = 0;
    double mse = 0;
    double relMse = 0;
    double sqnrDb = 0;
    double maxAbsErr = 0;
    double cosine = 1;
    double meanSquare = 0;             // mean(x^2) of the original
    std::optional<double> weightedMse; // only when every chunk came with importance
};

// Accumulates over row chunks (and across threads with merge) so that large tensors never sit in memory.
class ErrorAccumulator {
public:
    // reference / approx: rows x cols row-major; importance: cols values or null.
    void add(const float* reference, const float* approx, uint64_t rows, uint64_t cols,
             const float* importance = nullptr);
    void merge(const ErrorAccumulator& other);
    ErrorMetrics result() const;

    // The raw sums (for sampling estimators, core/quant/sensitivity.cpp).
    double sumE2() const { return m_sumE2; }
    double sumWeightedE2() const { return m_sumWeightedE2; }

private:
    uint64_t m_count = 0;
    uint64_t m_weightedCount = 0;
    double m_sumX2 = 0, m_sumY2 = 0, m_sumXY = 0, m_sumE2 = 0, m_maxAbs = 0;
    double m_sumWeightedE2 = 0; // sum_i sum_j imp_j e_ij^2
    double m_sumImportance = 0; // sum over rows of sum_j imp_j
};

ErrorMetrics computeErrorMetrics(const float* reference, const float* approx, uint64_t rows, uint64_t cols,
                                 const float* importance = nullptr);

} // namespace qs
