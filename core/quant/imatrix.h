#pragma once
// llama.cpp importance matrices ("imatrix"): per weight matrix, the mean squared input activation of every
// input column, which importance-weighted quantization and the weighted error metric use.
//
// Two file formats are read:
// - GGUF (current llama-imatrix): for each weight <name>, an F32 tensor <name>.in_sum2 with ne = [columns,
//   matrices] (sum over tokens of x_j^2) and an F32 tensor <name>.counts with one token count per matrix;
//   importance = in_sum2 / counts (1 where a count is 0, as llama-quantize does). Metadata:
//   imatrix.datasets (strings), imatrix.chunk_count, imatrix.chunk_size.
// - legacy .dat: int32 n_entries; per entry int32 name length, the name bytes, int32 ncall, int32 nval,
//   float32 values[nval]; then optionally int32 last_call, int32 dataset-name length and the name.
//   importance = values / ncall (values unchanged when ncall <= 0), again as llama-quantize reads it.
// A Quantscope activation statistics file (HDF5, core/infer/activationstats.h) is read too: its mean
// squares are the importance.
// Both are parsed as hostile input: every length is checked against the bytes left, errors are
// qs::FormatError naming the field and byte offset.
//
// Entry names are GGUF tensor names (blk.N.ffn_down.weight) because the matrix is collected on a GGUF
// model; lookups from a Hugging Face model go through the Llama-family name mapping below.

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

class Model;
class JobControl;

enum class ImportanceFileFormat : uint8_t { Gguf, LegacyDat, ActivationStats };

struct ImportanceEntry {
    std::string name;          // as stored (GGUF naming)
    uint64_t columns = 0;      // values per matrix: the weight's input features
    uint64_t matrices = 1;     // > 1 for stacked MoE expert weights
    std::vector<float> values; // matrices x columns importance values (already divided by the counts)
    std::vector<float> counts; // per matrix: GGUF token counts, or the legacy ncall
    std::span<const float> matrix(uint64_t index) const;
};

class ImportanceMatrix {
public:
    // Detects the format by the GGUF or HDF5 magic. Throws qs::FormatError / qs::Error.
    static ImportanceMatrix load(const std::filesystem::path& path, JobControl* job = nullptr);
    // Parses a legacy .dat image; fileName only labels errors.
    static ImportanceMatrix parseLegacy(std::span<const std::byte> data, const std::string& fileName);
    // Reads an imatrix GGUF that qs::openModel has loaded.
    static ImportanceMatrix fromGgufModel(const Model& model);
    // Made in memory (a calibration run): values already divided by the counts.
    static ImportanceMatrix fromEntries(std::vector<ImportanceEntry> entries, std::vector<std::string> datasets,
                                        uint64_t chunkCount);

    ImportanceFileFormat format() const { return m_format; }
    const std::vector<ImportanceEntry>& entries() const { return m_entries; }
    const std::vector<std::string>& datasets() const { return m_datasets; }
    uint64_t chunkCount() const { return m_chunkCount; } // GGUF chunk_count or legacy last_call

    // The entry for a model tensor name: exact, else through the GGUF <-> Hugging Face mapping.
    // *matrixIndex receives the expert index when an HF per-expert tensor maps onto a stacked entry.
    const ImportanceEntry* find(std::string_view tensorName, uint64_t* matrixIndex = nullptr) const;
    // The importance vector of a model tensor with `columns` input features; empty when the file has no
    // entry for it or the entry's length differs.
    std::span<const float> importanceFor(std::string_view tensorName, uint64_t columns) const;

private:
    ImportanceFileFormat m_format = ImportanceFileFormat::Gguf;
    std::vector<ImportanceEntry> m_entries;
    std::vector<std::string> m_datasets;
    uint64_t m_chunkCount = 0;
};

// Llama-family tensor names (Llama, Mistral, Qwen2, Mixtral ...) between GGUF and Hugging Face naming:
// token_embd <-> model.embed_tokens, output <-> lm_head, output_norm <-> model.norm,
// blk.N.attn_{q,k,v,output} <-> model.layers.N.self_attn.{q,k,v,o}_proj,
// blk.N.ffn_{gate,up,down} <-> model.layers.N.mlp.{gate,up,down}_proj,
// blk.N.attn_norm / ffn_norm <-> input_layernorm / post_attention_layernorm,
// blk.N.ffn_gate_inp <-> block_sparse_moe.gate; the suffix (.weight / .bias) is kept.
// Per-expert HF names (block_sparse_moe.experts.E.w1/w3/w2, mlp.experts.E.gate_proj/up_proj/down_proj)
// map to the stacked blk.N.ffn_{gate,up,down}_exps with *expert = E. nullopt when the name is not one of
// these.
std::optional<std::string> hfToGgufName(std::string_view hfName, uint64_t* expert = nullptr);
std::optional<std::string> ggufToHfName(std::string_view ggufName);

struct ImportanceCoverage {
    struct Match {
        std::string tensor; // model tensor name
        std::string entry;  // importance entry name
        uint64_t matrix = 0;
    };
    std::vector<Match> matched;
    std::vector<std::string> missing; // sensitivity candidates (see isSensitivityCandidate) without an entry
    std::vector<std::string> mismatched; // an entry exists but its length is not the tensor's columns
    std::vector<std::string> unused;     // entries that belong to no model tensor
};

// Which tensors the sensitivity matrix covers (isSensitivityCandidate) have importance data.
ImportanceCoverage matchImportance(const ImportanceMatrix& importance, const Model& model);

} // namespace qs
