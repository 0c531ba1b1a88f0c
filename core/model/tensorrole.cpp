// Tensor roles from names. Names are split at '.', the block and expert indices are the numbers after a
// block word (layers, h, blk, ...) and after "experts"; the role comes from the last component before the
// weight suffix, with its parent and the MoE context to tell apart names that mean different things in
// different places (GPT-2's c_proj, Mixtral's w1/w2/w3, the MoE "gate").
#include "core/model/tensorrole.h"

#include "core/util/strings.h"

#include <algorithm>
#include <array>
#include <vector>

namespace qs {

namespace {

// One row per role, in enum order. gguf/hf: the name of the role's tensor inside block N in llama.cpp
// (blk.N.<gguf>.weight) and in transformers (model.layers.N.<hf>), nullptr where a role has no such
// per-block name (stacked experts have no single HF module). plannable: whether a plan assigns a format;
// norms, biases, routers and position embeddings keep their stored dtype, as llama.cpp and the
// GPTQ/compressed-tensors tools leave them. quantizable: what a quantizer normally touches, which leaves
// out MoE routers too (llama.cpp never quantizes ffn_gate_inp: routing flips under small errors).
// clang-format off
constexpr RoleTraits kRoleTraitsRows[] = {
    // role                          id                    gguf             hf                    quant  plan
    {TensorRole::Embedding,         "embedding",          nullptr,         nullptr,              true,  true},
    {TensorRole::AttnQ,             "attn_q",             "attn_q",        "self_attn.q_proj",   true,  true},
    {TensorRole::AttnK,             "attn_k",             "attn_k",        "self_attn.k_proj",   true,  true},
    {TensorRole::AttnV,             "attn_v",             "attn_v",        "self_attn.v_proj",   true,  true},
    {TensorRole::AttnQKV,           "attn_qkv",           "attn_qkv",      "self_attn.qkv_proj", true,  true},
    {TensorRole::AttnOut,           "attn_out",           "attn_output",   "self_attn.o_proj",   true,  true},
    {TensorRole::MlpGate,           "mlp_gate",           "ffn_gate",      "mlp.gate_proj",      true,  true},
    {TensorRole::MlpUp,             "mlp_up",             "ffn_up",        "mlp.up_proj",        true,  true},
    {TensorRole::MlpGateUp,         "mlp_gate_up",        "ffn_up",        "mlp.gate_up_proj",   true,  true},
    {TensorRole::MlpDown,           "mlp_down",           "ffn_down",      "mlp.down_proj",      true,  true},
    {TensorRole::MoeRouter,         "moe_router",         nullptr,         nullptr,              false, false},
    {TensorRole::MoeExpertGate,     "moe_expert_gate",    "ffn_gate_exps", nullptr,              true,  true},
    {TensorRole::MoeExpertUp,       "moe_expert_up",      "ffn_up_exps",   nullptr,              true,  true},
    {TensorRole::MoeExpertDown,     "moe_expert_down",    "ffn_down_exps", nullptr,              true,  true},
    {TensorRole::MoeSharedExpert,   "moe_shared_expert",  nullptr,         nullptr,              true,  true},
    {TensorRole::Norm,              "norm",               nullptr,         nullptr,              false, false},
    {TensorRole::OutputHead,        "output_head",        nullptr,         nullptr,              true,  true},
    {TensorRole::Conv,              "conv",               nullptr,         nullptr,              false, true},
    {TensorRole::PositionEmbedding, "position_embedding", nullptr,         nullptr,              false, false},
    {TensorRole::Bias,              "bias",               nullptr,         nullptr,              false, false},
    {TensorRole::Other,             "other",              nullptr,         nullptr,              false, true},
};
// clang-format on

constexpr std::array<RoleTraits, static_cast<size_t>(TensorRole::Count)> kRoleTraits =
    std::to_array(kRoleTraitsRows);

constexpr bool rowsInEnumOrder()
{
    for (size_t i = 0; i < kRoleTraits.size(); ++i)
        if (static_cast<size_t>(kRoleTraits[i].role) != i)
            return false;
    return true;
}
static_assert(rowsInEnumOrder(), "kRoleTraitsRows must list every TensorRole once, in enum order");

struct KeyRole {
    std::string_view key;
    TensorRole role;
};

// Unambiguous last components, Hugging Face and GGUF alike.
constexpr KeyRole kKeys[] = {
    {"embed_tokens", TensorRole::Embedding},
    {"wte", TensorRole::Embedding},
    {"tok_embeddings", TensorRole::Embedding},
    {"word_embeddings", TensorRole::Embedding},
    {"embed_in", TensorRole::Embedding},
    {"token_embd", TensorRole::Embedding},
    {"wpe", TensorRole::PositionEmbedding},
    {"embed_positions", TensorRole::PositionEmbedding},
    {"position_embeddings", TensorRole::PositionEmbedding},
    {"position_embd", TensorRole::PositionEmbedding},
    {"lm_head", TensorRole::OutputHead},
    {"embed_out", TensorRole::OutputHead},
    {"q_proj", TensorRole::AttnQ},
    {"wq", TensorRole::AttnQ},
    {"query", TensorRole::AttnQ},
    {"attn_q", TensorRole::AttnQ},
    {"q_a_proj", TensorRole::AttnQ},
    {"q_b_proj", TensorRole::AttnQ},
    {"k_proj", TensorRole::AttnK},
    {"wk", TensorRole::AttnK},
    {"key", TensorRole::AttnK},
    {"attn_k", TensorRole::AttnK},
    {"v_proj", TensorRole::AttnV},
    {"wv", TensorRole::AttnV},
    {"value", TensorRole::AttnV},
    {"attn_v", TensorRole::AttnV},
    {"qkv_proj", TensorRole::AttnQKV},
    {"c_attn", TensorRole::AttnQKV},
    {"query_key_value", TensorRole::AttnQKV},
    {"Wqkv", TensorRole::AttnQKV},
    {"attn_qkv", TensorRole::AttnQKV},
    {"qkv", TensorRole::AttnQKV},
    // DeepSeek MLA: fused (compressed) key/value projections
    {"kv_a_proj_with_mqa", TensorRole::AttnQKV},
    {"kv_b_proj", TensorRole::AttnQKV},
    {"o_proj", TensorRole::AttnOut},
    {"wo", TensorRole::AttnOut},
    {"out_proj", TensorRole::AttnOut},
    {"attn_output", TensorRole::AttnOut},
    {"attn_out", TensorRole::AttnOut},
    {"gate_proj", TensorRole::MlpGate},
    {"ffn_gate", TensorRole::MlpGate},
    {"up_proj", TensorRole::MlpUp},
    {"ffn_up", TensorRole::MlpUp},
    {"c_fc", TensorRole::MlpUp},
    {"fc1", TensorRole::MlpUp},
    {"dense_h_to_4h", TensorRole::MlpUp},
    {"down_proj", TensorRole::MlpDown},
    {"ffn_down", TensorRole::MlpDown},
    {"fc2", TensorRole::MlpDown},
    {"dense_4h_to_h", TensorRole::MlpDown},
    {"gate_up_proj", TensorRole::MlpGateUp},
    {"ffn_gate_up", TensorRole::MlpGateUp},
    {"router", TensorRole::MoeRouter},
    {"ffn_gate_inp", TensorRole::MoeRouter},
    {"ffn_gate_inp_shexp", TensorRole::MoeRouter},
    {"shared_expert_gate", TensorRole::MoeRouter},
    {"ffn_gate_exps", TensorRole::MoeExpertGate},
    {"ffn_up_exps", TensorRole::MoeExpertUp},
    {"ffn_down_exps", TensorRole::MoeExpertDown},
    {"ffn_gate_shexp", TensorRole::MoeSharedExpert},
    {"ffn_up_shexp", TensorRole::MoeSharedExpert},
    {"ffn_down_shexp", TensorRole::MoeSharedExpert},
};

constexpr std::string_view kBlockWords[] = {"layers", "h", "blk", "blocks", "layer", "block"};

// Small non-negative decimal (block and expert numbers), -1 otherwise.
int smallNumber(std::string_view s)
{
    if (s.empty() || s.size() > 9)
        return -1;
    int v = 0;
    for (char c : s) {
        if (c < '0' || c > '9')
            return -1;
        v = v * 10 + (c - '0');
    }
    return v;
}

bool isNormName(std::string_view part)
{
    return containsNoCase(part, "norm") || part == "ln" || part.starts_with("ln_");
}

TensorRole roleOf(const std::vector<std::string_view>& parts, size_t end, bool inExperts, size_t rank)
{
    const std::string_view key = parts[end - 1];
    const std::string_view parent = end >= 2 ? parts[end - 2] : std::string_view();

    if (isNormName(key) || isNormName(parent))
        return TensorRole::Norm;
    if (rank == 4 || containsNoCase(key, "conv") || containsNoCase(parent, "conv"))
        return TensorRole::Conv;
    if (end == 1 && key == "output")
        return TensorRole::OutputHead; // GGUF and Meta checkpoints: the top-level "output.weight"

    for (const auto& k : kKeys)
        if (k.key == key) {
            if (inExperts) {
                // Qwen2-MoE / DeepSeek name experts like dense MLPs
                if (k.role == TensorRole::MlpGate)
                    return TensorRole::MoeExpertGate;
                if (k.role == TensorRole::MlpUp)
                    return TensorRole::MoeExpertUp;
                if (k.role == TensorRole::MlpDown)
                    return TensorRole::MoeExpertDown;
            }
            return k.role;
        }

    if (inExperts) { // Mixtral: experts.E.w1 / w3 / w2
        if (key == "w1")
            return TensorRole::MoeExpertGate;
        if (key == "w3")
            return TensorRole::MoeExpertUp;
        if (key == "w2")
            return TensorRole::MoeExpertDown;
    }
    if (key == "w1")
        return TensorRole::MlpGate; // Meta's feed_forward.w1 / w3 / w2
    if (key == "w3")
        return TensorRole::MlpUp;
    if (key == "w2")
        return TensorRole::MlpDown;
    if (key == "gate" &&
        (parent == "block_sparse_moe" || parent == "mlp" || parent == "moe" || parent == "feed_forward"))
        return TensorRole::MoeRouter;

    const bool inAttention =
        std::any_of(parts.begin(), parts.begin() + static_cast<long>(end) - 1, [](auto p) {
            return p == "attn" || p == "self_attn" || p == "attention" || p == "self_attention";
        });
    if (key == "c_proj")
        return inAttention ? TensorRole::AttnOut : TensorRole::MlpDown; // GPT-2: attn.c_proj vs mlp.c_proj
    if (key == "dense") {
        if (inAttention)
            return TensorRole::AttnOut; // Phi-2 self_attn.dense, BERT attention.output.dense
        if (parent == "intermediate")
            return TensorRole::MlpUp; // BERT
        if (parent == "output")
            return TensorRole::MlpDown;
    }
    return TensorRole::Other;
}

} // namespace

RoleInfo classifyTensor(std::string_view name, size_t rank)
{
    RoleInfo info;
    const auto parts = split(name, '.');
    for (size_t i = 1; i < parts.size(); ++i) {
        const int n = smallNumber(parts[i]);
        if (n < 0)
            continue;
        if (info.block < 0 &&
            std::find(std::begin(kBlockWords), std::end(kBlockWords), parts[i - 1]) != std::end(kBlockWords))
            info.block = n;
        else if (parts[i - 1] == "experts")
            info.expert = n;
    }

    const std::string_view last = parts.back();
    if (last == "bias" || last == "b_0" || last.ends_with("_bias")) {
        info.role = TensorRole::Bias;
        return info;
    }
    size_t end = parts.size();
    if ((last == "weight" || last == "w_0") && end > 1)
        --end; // w_0: PaddlePaddle's weight suffix
    const bool inExperts =
        info.expert >= 0 || std::find(parts.begin(), parts.begin() + static_cast<long>(end), "experts") !=
                                parts.begin() + static_cast<long>(end);
    const bool inShared = std::any_of(parts.begin(), parts.begin() + static_cast<long>(end),
                                      [](auto p) { return p.starts_with("shared_expert"); });
    info.role = roleOf(parts, end, inExperts && !inShared, rank);
    if (inShared && info.role != TensorRole::MoeRouter && info.role != TensorRole::Norm &&
        info.role != TensorRole::Other)
        info.role = TensorRole::MoeSharedExpert; // Qwen2-MoE shared_expert.*, DeepSeek shared_experts.*
    return info;
}

const RoleTraits& roleTraits(TensorRole role)
{
    const auto i = static_cast<size_t>(role);
    return kRoleTraits[i < kRoleTraits.size() ? i : static_cast<size_t>(TensorRole::Other)];
}

const char* roleName(TensorRole role)
{
    return roleTraits(role).id;
}

bool roleFromName(std::string_view name, TensorRole* out)
{
    for (const RoleTraits& t : kRoleTraits)
        if (name == t.id) {
            if (out)
                *out = t.role;
            return true;
        }
    return false;
}

bool roleIsQuantizable(TensorRole role)
{
    return roleTraits(role).quantizable;
}

} // namespace qs
