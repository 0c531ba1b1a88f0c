#pragma once
// The synthetic weights the quantizer benchmarks share: Gaussian (std 0.02) with 0.1% outliers 10x larger,
// and a writer of BF16 safetensors files for the whole-model benchmarks.
#include "core/model/dtype.h"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
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

struct BenchTensor {
    std::string name;
    uint64_t rows, cols;
};

// Writes the tensors as BF16 to a safetensors file; values(i) gives tensor i's rows * cols floats. Returns the
// number of weights written.
template <typename Values>
uint64_t writeBf16Safetensors(const std::filesystem::path& path, const std::vector<BenchTensor>& tensors,
                              Values&& values)
{
    std::string header = "{";
    uint64_t offset = 0, weights = 0;
    for (size_t i = 0; i < tensors.size(); ++i) {
        const auto& t = tensors[i];
        const uint64_t bytes = t.rows * t.cols * 2;
        header += (i ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"BF16\",\"shape\":[" +
                  std::to_string(t.rows) + "," + std::to_string(t.cols) + "],\"data_offsets\":[" +
                  std::to_string(offset) + "," + std::to_string(offset + bytes) + "]}";
        offset += bytes;
        weights += t.rows * t.cols;
    }
    header += "}";
    while (header.size() % 8)
        header += ' ';
    std::ofstream out(path, std::ios::binary);
    const uint64_t n = header.size();
    out.write(reinterpret_cast<const char*>(&n), 8);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    for (size_t i = 0; i < tensors.size(); ++i) {
        const std::vector<float> v = values(i);
        std::vector<uint16_t> bf(v.size());
        for (size_t k = 0; k < v.size(); ++k)
            bf[k] = qs::floatToBf16(v[k]);
        out.write(reinterpret_cast<const char*>(bf.data()), static_cast<std::streamsize>(bf.size() * 2));
    }
    return weights;
}
