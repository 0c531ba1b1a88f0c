#pragma once
// A Llama-3.2-1B-shaped random F16 GGUF (hidden 2048, FFN 8192, 16 layers, 32/8 heads, vocabulary 128256, tied
// embeddings: 1.24 B parameters, 2.5 GB) for the benchmarks that need a real-sized model (bench_quantize,
// bench_awq). The weights are uniform random (|w| < 0.05); quantization and calibration cost does not depend
// on the values much. generateLlama1b writes it; ensureLlama1b writes it in a child process when missing (so
// the generator's buffers and CPU time stay out of the figures) and says how long it took.
#include "../core/gguf_builder.h"
#include "core/model/dtype.h"

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/wait.h>
#include <unistd.h>
#include <vector>

namespace qsbench {

namespace fs = std::filesystem;
using B = qstest::GgufBuilder;

inline void generateLlama1b(const fs::path& path)
{
    const uint64_t hidden = 2048, ffn = 8192, kv = 512, vocab = 128256, layers = 16;
    B b;
    b.kv("general.architecture", B::vStr("llama"))
        .kv("general.name", B::vStr("bench-llama-1b"))
        .kv("general.file_type", B::vU32(1))
        .kv("llama.block_count", B::vU32(layers))
        .kv("llama.context_length", B::vU32(131072))
        .kv("llama.embedding_length", B::vU32(hidden))
        .kv("llama.feed_forward_length", B::vU32(ffn))
        .kv("llama.attention.head_count", B::vU32(32))
        .kv("llama.attention.head_count_kv", B::vU32(8))
        .kv("llama.attention.layer_norm_rms_epsilon", B::vF32(1e-5f)) // llama-quantize reads the
        .kv("llama.rope.freq_base", B::vF32(500000.0f))                 // hyper-parameters too
        .kv("llama.vocab_size", B::vU32(vocab));
    std::vector<std::pair<std::vector<uint64_t>, uint32_t>> shapes; // ne, ggml type
    uint64_t offset = 0;
    auto add = [&](std::string name, std::vector<uint64_t> ne, uint32_t type) {
        uint64_t n = 1;
        for (auto d : ne)
            n *= d;
        b.tensors.push_back({std::move(name), ne, type, {}, offset, std::nullopt});
        offset = (offset + n * (type == 0 ? 4 : 2) + 31) / 32 * 32;
        shapes.emplace_back(std::move(ne), type);
    };
    add("token_embd.weight", {hidden, vocab}, 1);
    for (uint64_t l = 0; l < layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {hidden}, 0);
        add(p + "attn_q.weight", {hidden, hidden}, 1);
        add(p + "attn_k.weight", {hidden, kv}, 1);
        add(p + "attn_v.weight", {hidden, kv}, 1);
        add(p + "attn_output.weight", {hidden, hidden}, 1);
        add(p + "ffn_norm.weight", {hidden}, 0);
        add(p + "ffn_gate.weight", {hidden, ffn}, 1);
        add(p + "ffn_up.weight", {hidden, ffn}, 1);
        add(p + "ffn_down.weight", {ffn, hidden}, 1);
    }
    add("output_norm.weight", {hidden}, 0);
    b.withData = false;
    std::string header = b.build();
    header.resize(b.layout.dataStart, '\0');
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    uint64_t state = 0x9E3779B97F4A7C15ull, written = 0;
    std::vector<char> chunk;
    for (size_t i = 0; i < shapes.size(); ++i) {
        const auto& [ne, type] = shapes[i];
        uint64_t n = 1;
        for (auto d : ne)
            n *= d;
        const uint64_t start = b.tensors[i].offset.value_or(0);
        if (start > written) {
            chunk.assign(start - written, 0);
            out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
            written = start;
        }
        chunk.resize(n * (type == 0 ? 4 : 2));
        for (uint64_t k = 0; k < n; ++k) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            const float v = type == 0 ? 1.0f : (float(state >> 40) / float(1 << 24) - 0.5f) * 0.1f;
            if (type == 0)
                std::memcpy(chunk.data() + 4 * k, &v, 4);
            else {
                const uint16_t h = qs::floatToHalf(v);
                std::memcpy(chunk.data() + 2 * k, &h, 2);
            }
        }
        out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
        written += chunk.size();
    }
    if (offset > written) {
        chunk.assign(offset - written, 0);
        out.write(chunk.data(), static_cast<std::streamsize>(chunk.size()));
    }
}


inline bool ensureLlama1b(const fs::path& model)
{
    if (fs::exists(model))
        return true;
    const auto t0 = std::chrono::steady_clock::now();
    const pid_t child = fork();
    if (child == 0) {
        generateLlama1b(model);
        _exit(0);
    }
    int status = 0;
    if (child < 0 || waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::fprintf(stderr, "generating the model failed\n");
        return false;
    }
    std::printf("generated %s (%.2f GB) in %.1f s\n", model.c_str(), double(fs::file_size(model)) / 1e9,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return true;
}

} // namespace qsbench
