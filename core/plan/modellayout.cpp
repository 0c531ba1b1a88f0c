#include "core/model/archlimits.h"
#include "core/plan/modellayout.h"

#include "core/util/fileio.h"

#include "core/util/checked.h"
#include "core/util/error.h"

#include <algorithm>
#include <optional>

namespace qs {

uint64_t ModelLayout::parameterCount() const
{
    uint64_t n = 0;
    for (const auto& t : tensors)
        n += t.elements();
    return n;
}

uint64_t ModelLayout::totalBytes() const
{
    uint64_t n = 0;
    for (const auto& t : tensors)
        n += t.bytes;
    return n;
}

const TensorInfo* ModelLayout::find(std::string_view name) const
{
    for (const auto& t : tensors)
        if (t.name == name)
            return &t;
    return nullptr;
}

RoleInfo planRole(const TensorInfo& tensor)
{
    if (tensor.role.role != TensorRole::Other)
        return tensor.role;
    return classifyTensor(tensor.name, tensor.shape.size());
}

bool isPlannable(const TensorInfo& tensor)
{
    return tensor.shape.size() >= 2 && tensor.elements() != 0 && roleTraits(planRole(tensor).role).plannable;
}

ModelLayout layoutFromModel(const Model& model)
{
    ModelLayout l;
    l.path = model.path().string();
    l.format = model.format();
    l.config = model.config();
    l.tensors = model.tensors();
    for (auto& t : l.tensors)
        t.role = planRole(t);
    for (const auto& f : model.files())
        l.fileSizes.push_back(f->size());
    return l;
}

namespace {

struct ArchFlags {
    bool qkvBias = false; // q/k/v projections carry a bias (Qwen2, llama attention_bias)
    bool outBias = false; // o_proj carries a bias (llama attention_bias)
    bool mlpBias = false;
    bool qkNorm = false;        // per-head q_norm / k_norm (Qwen3, Gemma 3)
    bool sandwichNorms = false; // pre/post feed-forward norms (Gemma 2/3)
    bool fusedQkv = false;      // Phi-3: qkv_proj and gate_up_proj
    bool moe = false;           // Mixtral: block_sparse_moe
};

void addTensor(ModelLayout& l, DType dtype, std::string name, std::vector<uint64_t> shape)
{
    TensorInfo t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.dtype = dtype;
    uint64_t n = 1;
    for (auto d : t.shape) {
        auto m = checkedMul(n, d);
        if (!m)
            throw Error(ErrorCode::Overflow, t.name + ": tensor size overflows");
        n = *m;
    }
    auto bytes = dtypeByteSize(dtype, n);
    if (!bytes)
        throw Error(ErrorCode::Overflow, t.name + ": tensor size overflows");
    t.bytes = *bytes;
    t.role = classifyTensor(t.name, t.shape.size());
    l.tensors.push_back(std::move(t));
}

} // namespace

ModelLayout layoutFromConfigJson(const std::string& json, const std::string& fileName)
{
    // The one config.json reader (core/io/hfconfig.cpp): keys, defaults, sliding-window layers and limits
    // are the same here as when the file sits beside safetensors weights.
    const HfConfig hf = parseHfConfig(json, fileName);
    const std::string& type = hf.modelType;

    ArchFlags f;
    if (type == "llama" || type == "mistral") {
        f.qkvBias = f.outBias = hf.attentionBias.value_or(false);
        f.mlpBias = hf.mlpBias.value_or(false);
    } else if (type == "qwen2") {
        f.qkvBias = true;
    } else if (type == "qwen3") {
        f.qkNorm = true;
        f.qkvBias = f.outBias = hf.attentionBias.value_or(false);
    } else if (type == "gemma") {
        // the plain layout; Gemma's tied embeddings are the reader's default
    } else if (type == "gemma2") {
        f.sandwichNorms = true;
    } else if (type == "gemma3_text" || type == "gemma3") {
        f.sandwichNorms = true;
        f.qkNorm = true;
    } else if (type == "phi3") {
        f.fusedQkv = true;
    } else if (type == "mixtral") {
        f.moe = true;
    } else {
        throw Error(
            ErrorCode::Unsupported,
            fileName + ": cannot derive tensor shapes for model_type '" + type +
                "' (supported: llama, mistral, qwen2, qwen3, gemma, gemma2, gemma3_text, phi3, mixtral)");
    }

    ModelLayout l;
    l.path = fileName;
    l.format = ModelFormat::ConfigOnly;
    l.derivedFromConfig = true;
    ModelConfig& m = l.config;
    m = hf.config;
    m.architecture = type;
    auto required = [&](uint64_t v, const char* key) {
        if (v == 0)
            throw FormatError(ErrorCode::BadValue, fileName, key, std::nullopt, "missing or zero");
    };
    required(m.layers, "num_hidden_layers");
    required(m.hiddenSize, "hidden_size");
    required(m.intermediateSize, "intermediate_size");
    required(m.heads, "num_attention_heads");
    required(m.vocabSize, "vocab_size");
    if (m.kvHeads == 0)
        m.kvHeads = m.heads;
    if (m.headDim == 0)
        throw FormatError(ErrorCode::BadValue, fileName, "hidden_size", std::nullopt,
                          "not a multiple of num_attention_heads and no head_dim given");
    if (f.moe) {
        required(m.experts, "num_local_experts");
        if (m.expertsUsed == 0)
            m.expertsUsed = 2; // Mixtral's default
    }
    // The same limits as every other source: a hostile file cannot make us derive millions of tensors.
    checkArchitecture(m, fileName);

    const std::string& dt = hf.dtype;
    DType dtype = DType::BF16;
    if (dt == "float16")
        dtype = DType::F16;
    else if (dt == "float32")
        dtype = DType::F32;

    const uint64_t H = m.hiddenSize, I = m.intermediateSize, V = m.vocabSize, hd = m.headDim;
    const uint64_t q = uint64_t(m.heads) * hd, kv = uint64_t(m.kvHeads) * hd;
    addTensor(l, dtype, "model.embed_tokens.weight", {V, H});
    for (uint32_t i = 0; i < m.layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        addTensor(l, dtype, p + "input_layernorm.weight", {H});
        if (f.fusedQkv) {
            addTensor(l, dtype, p + "self_attn.qkv_proj.weight", {q + 2 * kv, H});
        } else {
            addTensor(l, dtype, p + "self_attn.q_proj.weight", {q, H});
            addTensor(l, dtype, p + "self_attn.k_proj.weight", {kv, H});
            addTensor(l, dtype, p + "self_attn.v_proj.weight", {kv, H});
            if (f.qkvBias) {
                addTensor(l, dtype, p + "self_attn.q_proj.bias", {q});
                addTensor(l, dtype, p + "self_attn.k_proj.bias", {kv});
                addTensor(l, dtype, p + "self_attn.v_proj.bias", {kv});
            }
        }
        if (f.qkNorm) {
            addTensor(l, dtype, p + "self_attn.q_norm.weight", {hd});
            addTensor(l, dtype, p + "self_attn.k_norm.weight", {hd});
        }
        addTensor(l, dtype, p + "self_attn.o_proj.weight", {H, q});
        if (f.outBias)
            addTensor(l, dtype, p + "self_attn.o_proj.bias", {H});
        addTensor(l, dtype, p + "post_attention_layernorm.weight", {H});
        if (f.sandwichNorms) {
            addTensor(l, dtype, p + "pre_feedforward_layernorm.weight", {H});
            addTensor(l, dtype, p + "post_feedforward_layernorm.weight", {H});
        }
        if (f.moe) {
            addTensor(l, dtype, p + "block_sparse_moe.gate.weight", {m.experts, H});
            for (uint32_t e = 0; e < m.experts; ++e) {
                const std::string x = p + "block_sparse_moe.experts." + std::to_string(e) + ".";
                addTensor(l, dtype, x + "w1.weight", {I, H});
                addTensor(l, dtype, x + "w2.weight", {H, I});
                addTensor(l, dtype, x + "w3.weight", {I, H});
            }
        } else if (f.fusedQkv) {
            addTensor(l, dtype, p + "mlp.gate_up_proj.weight", {2 * I, H});
            addTensor(l, dtype, p + "mlp.down_proj.weight", {H, I});
        } else {
            addTensor(l, dtype, p + "mlp.gate_proj.weight", {I, H});
            addTensor(l, dtype, p + "mlp.up_proj.weight", {I, H});
            addTensor(l, dtype, p + "mlp.down_proj.weight", {H, I});
            if (f.mlpBias) {
                addTensor(l, dtype, p + "mlp.gate_proj.bias", {I});
                addTensor(l, dtype, p + "mlp.up_proj.bias", {I});
                addTensor(l, dtype, p + "mlp.down_proj.bias", {H});
            }
        }
    }
    addTensor(l, dtype, "model.norm.weight", {H});
    if (!m.tiedEmbeddings)
        addTensor(l, dtype, "lm_head.weight", {V, H});
    return l;
}

ModelLayout openLayout(const std::filesystem::path& path, JobControl* job)
{
    std::error_code ec;
    const bool isDir = std::filesystem::is_directory(path, ec);
    if (!isDir && path.extension() == ".json" && path.filename() != "model.safetensors.index.json")
        return layoutFromConfig(path);
    if (isDir) {
        bool hasWeights = false;
        for (const auto& e : std::filesystem::directory_iterator(path, ec)) {
            const auto ext = e.path().extension();
            if (ext == ".safetensors" || ext == ".gguf")
                hasWeights = true;
        }
        if (!hasWeights && std::filesystem::exists(path / "config.json", ec))
            return layoutFromConfig(path / "config.json");
    }
    auto model = openModel(path, job);
    ModelLayout l = layoutFromModel(*model);
    if (l.config.layers == 0) {
        const auto dir = isDir ? path : path.parent_path();
        if (std::filesystem::exists(dir / "config.json", ec)) {
            try {
                l.config = layoutFromConfig(dir / "config.json").config;
            } catch (const Error&) {
                // An architecture we cannot derive shapes for still has tensors: keep the loader's view.
            }
        }
    }
    return l;
}

ModelLayout layoutFromConfig(const std::filesystem::path& configJson)
{
    ModelLayout l = layoutFromConfigJson(readRegularFile(configJson, kMaxConfigJsonBytes, "config"),
                                         configJson.string());
    l.path = configJson.string();
    return l;
}

} // namespace qs
