#pragma once
// What a tensor does in the network, from its name. Later features group and constrain by role
// (e.g. q/k/v of one block must share a format for fused kernels).

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace qs {

enum class TensorRole : uint8_t {
    Embedding,
    AttnQ,
    AttnK,
    AttnV,
    AttnQKV,
    AttnOut,
    MlpGate,
    MlpUp,
    MlpGateUp,
    MlpDown,
    MoeRouter,
    MoeExpertGate,
    MoeExpertUp,
    MoeExpertDown,
    MoeSharedExpert,
    Norm,
    OutputHead,
    Conv,
    PositionEmbedding,
    Bias,
    Other,
    Count
};

struct RoleInfo {
    TensorRole role = TensorRole::Other;
    int block = -1;  // transformer block index, -1 when outside the blocks
    int expert = -1; // MoE expert index, -1 when not an expert tensor (or all experts stacked)
};

// Classifies Hugging Face names (Llama, Mistral, Qwen2, Gemma, Phi-3, GPT-2, Mixtral, Qwen2-MoE, DeepSeek
// ...) and GGUF names (blk.N.attn_q.weight ...). `rank` is the number of dimensions when known (0: unknown):
// 4-D weights are convolutions whatever their name. Every *.bias is Bias, within its block.
RoleInfo classifyTensor(std::string_view name, size_t rank = 0);

// Everything known about a role, one table row per role (tensorrole.cpp).
struct RoleTraits {
    TensorRole role;
    const char* id;       // stable identifier in plans, JSON and the CLI: "embedding", "attn_q", ..., "other"
    const char* ggufName; // within blk.N in llama.cpp names ("attn_output"), nullptr when none
    const char*
        hfModule; // within model.layers.N in transformers names ("self_attn.o_proj"), nullptr when none
    // Weights a quantizer would normally touch: the matmul weights of attention, MLP and experts, token
    // embeddings and the output head. MoE routers are matmuls too but stay in high precision (llama.cpp never
    // quantizes ffn_gate_inp: routing flips under small errors); norms, biases, convolutions, position
    // embeddings and unrecognised tensors are left alone.
    bool quantizable;
    // Whether a plan may assign a format (given two or more dimensions): all but norms, biases, routers
    // and position embeddings, which stay in their stored dtype.
    bool plannable;
};
const RoleTraits& roleTraits(TensorRole role); // out of range: the row of Other

const char* roleName(TensorRole role); // roleTraits(role).id
bool roleFromName(std::string_view name, TensorRole* out);
bool roleIsQuantizable(TensorRole role); // roleTraits(role).quantizable

} // namespace qs
