#pragma once
// The synthetic weights the quantizer benchmarks share: Gaussian (std 0.02) with 0.1% outliers 10x larger.
#include <cstdint>
#include <random>
#include <vector>

inline std::vector<float> benchWeights(uint64_t n, std::mt19937& rng)
{
    std::normal_distribution<float> gauss(0.0f, 0.02f);
    std::uniform_real_distribution<float> uni(0.0f, 1.0f);
    std::vector<float> x(n);
    for (float& v : x)
        v = uni(rng) < 0.001f ? 10 * gauss(rng) : gauss(rng);
    return x;
}
