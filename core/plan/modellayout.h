#pragma once
// What planning needs to know about a model: its tensors (name, shape, role, stored bytes) and its
// architecture. Built from an opened model, or from config.json alone so that users can plan (memory
// footprint, plans, exports) before downloading any weights.

#include "core/model/model.h"

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace qs {

struct ModelLayout {
    std::string path; // what the user opened (model file, folder or config.json)
    ModelFormat format = ModelFormat::ConfigOnly;
    ModelConfig config;
    // Every tensor with its role filled in (see planRole). For ConfigOnly layouts the shapes are derived
    // from the architecture and `bytes` assumes the checkpoint dtype (torch_dtype, BF16 when absent);
    // fileIndex / offset are meaningless.
    std::vector<TensorInfo> tensors;
    std::vector<uint64_t> fileSizes; // sizes of Model::files(), for plan identity (empty when derived)
    bool derivedFromConfig = false;

    uint64_t parameterCount() const;
    uint64_t totalBytes() const;
    const TensorInfo* find(std::string_view name) const;
};

// Copies the tensors and configuration of an opened model. Roles the classifier left as Other are
// re-derived by planRole() from the name.
ModelLayout layoutFromModel(const Model& model);

// Reads a Hugging Face config.json and derives every tensor of the checkpoint it describes, with the HF
// names and shapes transformers would create. Supported model_type values: llama, mistral, qwen2, qwen3,
// gemma, gemma2, gemma3_text, phi3, mixtral (and their *ForCausalLM architectures). Throws
// qs::FormatError for a malformed file and qs::Error(Unsupported) for other architectures.
ModelLayout layoutFromConfig(const std::filesystem::path& configJson);
// The same from the file's text (used by tests with hand-written configurations).
ModelLayout layoutFromConfigJson(const std::string& json, const std::string& fileName = "config.json");

// Opens PATH for planning: a config.json (or a folder holding only one) gives a derived layout; anything
// else goes through openModel(). When the loader found no architecture metadata but a config.json sits
// beside the weights, the architecture is taken from it.
ModelLayout openLayout(const std::filesystem::path& path, JobControl* job = nullptr);

// Role of a tensor: TensorInfo::role when set, else classifyTensor() of its name (for TensorInfo built by
// hand, whose role was never filled in).
RoleInfo planRole(const TensorInfo& tensor);

// Whether a plan assigns a format to this tensor: weights with two or more dimensions (matrices, stacked
// experts, embeddings, heads) except norms, biases, routers and position embeddings, which stay in their
// stored dtype like llama.cpp and the GPTQ/compressed-tensors tools leave them.
bool isPlannable(const TensorInfo& tensor);

} // namespace qs
