// Opening a Llama-3-70B-shaped sharded BF16 checkpoint (141 GB): the shards are sparse files with real
// headers, so the benchmark needs no disk space; opening reads only the headers and maps the files.
#include "core/io/safetensors.h"
#include "core/model/model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

namespace fs = std::filesystem;

namespace {

struct Tensor {
    std::string name;
    std::vector<uint64_t> shape;
    uint64_t bytes() const
    {
        uint64_t n = 2;
        for (auto d : shape)
            n *= d;
        return n;
    }
};

std::vector<Tensor> llama70b()
{
    const uint64_t hidden = 8192, inter = 28672, kv = 1024, vocab = 128256;
    std::vector<Tensor> t = {{"model.embed_tokens.weight", {vocab, hidden}}};
    for (int l = 0; l < 80; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        t.push_back({p + "input_layernorm.weight", {hidden}});
        t.push_back({p + "self_attn.q_proj.weight", {hidden, hidden}});
        t.push_back({p + "self_attn.k_proj.weight", {kv, hidden}});
        t.push_back({p + "self_attn.v_proj.weight", {kv, hidden}});
        t.push_back({p + "self_attn.o_proj.weight", {hidden, hidden}});
        t.push_back({p + "post_attention_layernorm.weight", {hidden}});
        t.push_back({p + "mlp.gate_proj.weight", {inter, hidden}});
        t.push_back({p + "mlp.up_proj.weight", {inter, hidden}});
        t.push_back({p + "mlp.down_proj.weight", {hidden, inter}});
    }
    t.push_back({"model.norm.weight", {hidden}});
    t.push_back({"lm_head.weight", {vocab, hidden}});
    return t;
}

void writeShard(const fs::path& path, const std::vector<const Tensor*>& tensors)
{
    std::string header = "{\"__metadata__\":{\"format\":\"pt\"}";
    uint64_t offset = 0;
    for (const auto* t : tensors) {
        header += ",\"" + t->name + "\":{\"dtype\":\"BF16\",\"shape\":[";
        for (size_t i = 0; i < t->shape.size(); ++i)
            header += (i ? "," : "") + std::to_string(t->shape[i]);
        header += "],\"data_offsets\":[" + std::to_string(offset) + "," +
                  std::to_string(offset + t->bytes()) + "]}";
        offset += t->bytes();
    }
    header += "}";
    while (header.size() % 8)
        header += ' ';
    std::string prefix(8, '\0');
    for (int i = 0; i < 8; ++i)
        prefix[i] = static_cast<char>((header.size() >> (8 * i)) & 0xFF);
    {
        std::ofstream out(path, std::ios::binary);
        out << prefix << header;
    }
    fs::resize_file(path, 8 + header.size() + offset); // sparse: no blocks allocated
}

} // namespace

int main()
{
    char tmpl[] = "/tmp/qs_bench_st_XXXXXX";
    const fs::path dir = ::mkdtemp(tmpl);
    const auto tensors = llama70b();
    const uint64_t shardLimit = 5'000'000'000ull;
    std::vector<std::vector<const Tensor*>> shards(1);
    uint64_t inShard = 0, total = 0;
    for (const auto& t : tensors) {
        if (inShard + t.bytes() > shardLimit && !shards.back().empty()) {
            shards.emplace_back();
            inShard = 0;
        }
        shards.back().push_back(&t);
        inShard += t.bytes();
        total += t.bytes();
    }
    std::string index = "{\"metadata\":{\"total_size\":" + std::to_string(total) + "},\"weight_map\":{";
    for (size_t s = 0; s < shards.size(); ++s) {
        char name[64];
        std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
        writeShard(dir / name, shards[s]);
        for (const auto* t : shards[s])
            index += std::string(index.back() == '{' ? "" : ",") + "\"" + t->name + "\":\"" + name + "\"";
    }
    index += "}}";
    std::ofstream(dir / "model.safetensors.index.json") << index;
    std::ofstream(dir / "config.json")
        << R"({"model_type":"llama","hidden_size":8192,"intermediate_size":28672,"num_hidden_layers":80,
"num_attention_heads":64,"num_key_value_heads":8,"vocab_size":128256,"max_position_embeddings":131072,
"tie_word_embeddings":false})";

    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    std::vector<double> ms;
    size_t count = 0;
    uint64_t bytes = 0;
    for (int run = 0; run < 7; ++run) {
        const auto t0 = std::chrono::steady_clock::now();
        const auto model = qs::loadSafetensors(dir, nullptr);
        const auto t1 = std::chrono::steady_clock::now();
        ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        count = model->tensors().size();
        bytes = model->totalBytes();
    }
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    std::sort(ms.begin(), ms.end());
    std::printf("safetensors open: Llama-3-70B shape, %zu shards, %zu tensors, %.1f GB BF16 (sparse files)\n",
                shards.size(), count, static_cast<double>(bytes) / 1e9);
    std::printf("  open time over %zu runs: median %.2f ms, min %.2f ms, max %.2f ms\n", ms.size(),
                ms[ms.size() / 2], ms.front(), ms.back());
    std::printf("  peak RSS %.1f MB (grew by %.1f MB while opening)\n", after.ru_maxrss / 1024.0,
                (after.ru_maxrss - before.ru_maxrss) / 1024.0);
    std::error_code ec;
    fs::remove_all(dir, ec);
    return bytes == total ? 0 : 1;
}
