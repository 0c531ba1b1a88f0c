// How long qs::loadGguf takes to open a Llama-70B-shaped GGUF (F16, 141 GB, 723 tensors, a 128256-token
// vocabulary with scores, types and 280000 merges). The tensor data is a sparse hole: opening must not
// touch it, so the figure is the header parse plus the map.
#include "../core/gguf_builder.h"
#include "core/io/gguf.h"
#include "core/model/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <unistd.h>

using B = qstest::GgufBuilder;

int main(int argc, char** argv)
{
    const std::filesystem::path path =
        argc > 1 ? argv[1] : std::filesystem::temp_directory_path() / "qs-bench-70b.gguf";
    const uint64_t hidden = 8192, ffn = 28672, kv = 1024, vocab = 128256, layers = 80;
    B b;
    b.kv("general.architecture", B::vStr("llama"))
        .kv("llama.block_count", B::vU32(layers))
        .kv("llama.embedding_length", B::vU32(hidden))
        .kv("llama.feed_forward_length", B::vU32(ffn))
        .kv("llama.attention.head_count", B::vU32(64))
        .kv("llama.attention.head_count_kv", B::vU32(8))
        .kv("llama.context_length", B::vU32(131072));
    std::vector<std::string> tokens, merges, scores, types;
    for (uint64_t i = 0; i < vocab; ++i) {
        tokens.push_back("tok" + std::to_string(i));
        scores.push_back(B::le<float>(-static_cast<float>(i)));
        types.push_back(B::le<int32_t>(1));
    }
    for (uint64_t i = 0; i < 280000; ++i)
        merges.push_back("m" + std::to_string(i) + " x");
    b.kv("tokenizer.ggml.tokens", B::vStrings(tokens))
        .kv("tokenizer.ggml.scores", B::vArray(B::F32, scores))
        .kv("tokenizer.ggml.token_type", B::vArray(B::I32, types))
        .kv("tokenizer.ggml.merges", B::vStrings(merges));
    // Tensor infos only: data is left out of the builder and added as a hole below.
    uint64_t offset = 0;
    auto add = [&](std::string name, std::vector<uint64_t> ne) {
        uint64_t n = 1;
        for (auto d : ne)
            n *= d;
        B::Tensor t{std::move(name), std::move(ne), 1, {}, offset, std::nullopt};
        offset = (offset + n * 2 + 31) / 32 * 32;
        b.tensors.push_back(std::move(t));
    };
    add("token_embd.weight", {hidden, vocab});
    for (uint64_t l = 0; l < layers; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        add(p + "attn_norm.weight", {hidden});
        add(p + "attn_q.weight", {hidden, hidden});
        add(p + "attn_k.weight", {hidden, kv});
        add(p + "attn_v.weight", {hidden, kv});
        add(p + "attn_output.weight", {hidden, hidden});
        add(p + "ffn_norm.weight", {hidden});
        add(p + "ffn_gate.weight", {hidden, ffn});
        add(p + "ffn_up.weight", {hidden, ffn});
        add(p + "ffn_down.weight", {ffn, hidden});
    }
    add("output_norm.weight", {hidden});
    add("output.weight", {hidden, vocab});
    b.withData = false;
    std::string header = b.build();
    header.resize(b.layout.dataStart, '\0');
    {
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        out.write(header.data(), static_cast<std::streamsize>(header.size()));
    }
    std::filesystem::resize_file(path, b.layout.dataStart + offset); // sparse

    double best = 1e9, total = 0;
    const int runs = 5;
    size_t tensors = 0;
    uint64_t params = 0, bytes = 0;
    for (int i = 0; i < runs; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto model = qs::loadGguf(path, nullptr);
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        best = std::min(best, s);
        total += s;
        tensors = model->tensors().size();
        params = model->parameterCount();
        bytes = model->files()[0]->size();
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("gguf open: %zu tensors, %.1f G parameters, file %.1f GB (header %.1f MB, data sparse)\n",
                tensors, params / 1e9, bytes / 1e9, header.size() / 1e6);
    std::printf("gguf open: best %.1f ms, mean %.1f ms over %d runs; peak RSS %ld MB\n", best * 1e3,
                total / runs * 1e3, runs, ru.ru_maxrss / 1024);
    std::filesystem::remove(path);
    return 0;
}
