// Tensor roles from names. Names are split at '.', the block and expert indices are the numbers after a
// block word (layers, h, blk, ...) and after "experts"; the role comes from the last component before the
// weight suffix, with its parent and the MoE context to tell apart names that mean different things in
// different places (GPT-2's c_proj, Mixtral's w1/w2/w3, the MoE "gate").
#include "core/model/tensorrole.h"

#include <algorithm>
#include <array>
#include <cctype>
#include <vector>

namespace qs {

namespace {

constexpr std::array<const char*, static_cast<size_t>(TensorRole::Count)> kRoleNames = {
    "embedding",
    "attn_q",
    "attn_k",
    "attn_v",
    "attn_qkv",
    "attn_out",
    "mlp_gate",
    "mlp_up",
    "mlp_gate_up",
    "mlp_down",
    "moe_router",
    "moe_expert_gate",
    "moe_expert_up",
    "moe_expert_down",
    "moe_shared_expert",
    "norm",
    "output_head",
    "conv",
    "position_embedding",
    "bias",
    "other",
};

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

std::vector<std::string_view> split(std::string_view s)
{
    std::vector<std::string_view> parts;
    size_t start = 0;
    while (true) {
        const size_t dot = s.find('.', start);
        parts.push_back(
            s.substr(start, dot == std::string_view::npos ? std::string_view::npos : dot - start));
        if (dot == std::string_view::npos)
            return parts;
        start = dot + 1;
    }
}

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

bool containsNoCase(std::string_view haystack, std::string_view needle)
{
    return std::search(haystack.begin(), haystack.end(), needle.begin(), needle.end(), [](char a, char b) {
               return std::tolower(static_cast<unsigned char>(a)) == b;
           }) != haystack.end();
}

bool startsWith(std::string_view s, std::string_view prefix)
{
    return s.substr(0, prefix.size()) == prefix;
}
bool endsWith(std::string_view s, std::string_view suffix)
{
    return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool isNormName(std::string_view part)
{
    return containsNoCase(part, "norm") || part == "ln" || startsWith(part, "ln_");
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
    const auto parts = split(name);
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
    if (last == "bias" || last == "b_0" || endsWith(last, "_bias")) {
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
                                      [](auto p) { return startsWith(p, "shared_expert"); });
    info.role = roleOf(parts, end, inExperts && !inShared, rank);
    if (inShared && info.role != TensorRole::MoeRouter && info.role != TensorRole::Norm &&
        info.role != TensorRole::Other)
        info.role = TensorRole::MoeSharedExpert; // Qwen2-MoE shared_expert.*, DeepSeek shared_experts.*
    return info;
}

const char* roleName(TensorRole role)
{
    const auto i = static_cast<size_t>(role);
    return i < kRoleNames.size() ? kRoleNames[i] : "other";
}

bool roleFromName(std::string_view name, TensorRole* out)
{
    for (size_t i = 0; i < kRoleNames.size(); ++i)
        if (name == kRoleNames[i]) {
            if (out)
                *out = static_cast<TensorRole>(i);
            return true;
        }
    return false;
}

bool roleIsQuantizable(TensorRole role)
{
    switch (role) {
    case TensorRole::Embedding:
    case TensorRole::AttnQ:
    case TensorRole::AttnK:
    case TensorRole::AttnV:
    case TensorRole::AttnQKV:
    case TensorRole::AttnOut:
    case TensorRole::MlpGate:
    case TensorRole::MlpUp:
    case TensorRole::MlpGateUp:
    case TensorRole::MlpDown:
    case TensorRole::MoeExpertGate:
    case TensorRole::MoeExpertUp:
    case TensorRole::MoeExpertDown:
    case TensorRole::MoeSharedExpert:
    case TensorRole::OutputHead:
        return true;
    default:
        return false; // routers stay in high precision (as llama.cpp does), norms, biases, convs, other
    }
}

} // namespace qs
