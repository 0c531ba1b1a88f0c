#pragma once
// Scale searches shared by the ggml quantizers (internal to core/quant). They are the published ggml
// algorithms re-expressed; the floating-point operation order is kept because the chosen levels (and so
// the bytes) depend on it. n is the number of values in the group, nmax the largest level.

#include <cstdint>

namespace qs::ggml::detail {

// Symmetric levels in [-nmax, nmax-1] (stored as L = level + nmax). rmseType 0: plain round-to-nearest
// from the absolute maximum; 1: weighted least squares (weights w, or x^2 when w is null) over 19 trial
// scales around nmax/max. Returns the scale.
float makeQxQuants(int n, int nmax, const float* x, int8_t* L, int rmseType, const float* w);

// Q3_K reference search: x^2-weighted least squares with up to 5 rounds of per-value level changes.
float makeQ3Quants(int n, int nmax, const float* x, int8_t* L);

// Asymmetric levels in [0, nmax] with a min <= 0 (returned negated in *negMin): grid search of
// nstep+1 trial scales (rmin + rdelta*i + nmax) / (max - min), each refined by a weighted least-squares
// fit of scale and min. makeQkx2 takes explicit weights and may use absolute error (useMad); makeQkx3
// uses x^2 when weights is null. Laux is scratch of n bytes. Returns the scale.
float makeQkx2Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* negMin,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool useMad);
float makeQkx3Quants(int n, int nmax, const float* x, const float* weights, uint8_t* L, float* negMin,
                     uint8_t* Laux, float rmin, float rdelta, int nstep, bool useMad);

// makeQkx2Quants (qkx3 false) or makeQkx3Quants on G consecutive groups of n <= 32 values at once: x,
// weights (required) and L advance by n per group, scales[g] / negMins[g] receive each group's result.
// Bit-identical to calling the scalar function group by group (each group keeps its own operation
// order); interleaving the groups only overlaps their independent floating-point dependency chains,
// which makes the K-quant searches several times faster. G is 8 or 16.
template <int G>
void makeQkxQuantsBatch(bool qkx3, int n, int nmax, const float* x, const float* weights, uint8_t* L,
                        float* scales, float* negMins, float rmin, float rdelta, int nstep, bool useMad);

// makeQxQuants(n, nmax, x, L, 1, weights) on G consecutive groups of n <= 32 values at once (weights
// required), bit-identical to the scalar calls group by group; scales[g] receives each group's result.
template <int G>
void makeQxQuantsBatch(int n, int nmax, const float* x, const float* weights, int8_t* L, float* scales);

// The IQ4 scale search of one block of 32 values with weights w (ggml's quantize_row_iq4_nl_impl
// search with 7 trials each side): the best scale, 0 for an all-zero block. iq4ScalesBatch8 does the
// same for 8 consecutive blocks (x and w advance by 32), bit-identical to the scalar calls.
float iq4Scale(const float* x, const float* w);
void iq4ScalesBatch8(const float* x, const float* w, float* scales);

// Non-negative levels in [0, nmax] for the super-block scales of the importance-weighted K-quants:
// weighted trial scales, then up to 5 rounds of per-value improvements. Returns the scale.
float makeQpQuants(int n, int nmax, const float* x, uint8_t* L, const float* weights);

} // namespace qs::ggml::detail
