#pragma once
// A built-in CPU forward pass for decoder-only transformers (Llama family), F32 compute.
//
// Weights are decoded from the model's memory map when the layer that uses them runs (any stored dtype,
// including the ggml block types), so memory stays bounded by one layer plus the activations; a byte budget
// keeps decoded tensors of small models for the next call (generation). Activations of a batch of sequences
// move layer by layer together: every matmul sees the tokens of all sequences as columns.
//
// Plan-aware: with a Plan, a tensor that has a planned format is replaced by its quantize/dequantize round
// trip (fake quantization) at decode time, the embedding lookup included; nothing is written to disk.

#include <Eigen/Core>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

class Model;
class Plan;
struct TensorInfo;

// How RoPE pairs the dimensions of a head: GGUF's llama layout rotates adjacent pairs (2i, 2i+1); Hugging
// Face's rotate-half pairs (i, i + d/2) (its q/k rows are permuted to match).
enum class RopeLayout : uint8_t { AdjacentPairs, RotateHalf };

// What distinguishes an architecture in the decoder. Only `implemented` ones run; the others are named so
// that adding them is a table row plus the code for their flag.
struct ArchTraits {
    const char* name; // general.architecture / HF model_type
    bool implemented = false;
    bool qkvBias = false;     // Qwen2: biases on q/k/v projections
    bool qkNorm = false;      // Qwen3: RMSNorm on q and k per head
    bool fusedQkv = false;    // Phi-3: one qkv projection
    bool fusedGateUp = false; // Phi-3: one gate_up projection
    bool gemmaStyle = false;  // Gemma-2: GeGLU, soft-capping, embedding scale, sandwich norms
};
// nullptr for an architecture the table does not know.
const ArchTraits* findArchTraits(std::string_view architecture);

struct TransformerConfig {
    std::string architecture;
    uint32_t layers = 0;
    uint32_t hidden = 0;
    uint32_t intermediate = 0;
    uint32_t heads = 0;
    uint32_t kvHeads = 0;
    uint32_t headDim = 0;
    uint32_t vocab = 0;
    uint64_t contextLength = 0; // the model's maximum; 0 when the file does not say
    float rmsEps = 1e-5f;
    float ropeBase = 10000.0f;
    uint32_t ropeDims = 0; // rotated dimensions per head (== headDim unless partial rotary)
    RopeLayout ropeLayout = RopeLayout::AdjacentPairs;
    float ropeLinearScale = 1.0f; // positions are divided by this ("linear" rope scaling)
    std::vector<float> invFreq;   // ropeDims / 2 inverse frequencies, scaling applied
};

struct ForwardOptions {
    unsigned threads = 0;       // resolveThreads() policy
    const Plan* plan = nullptr; // fake-quantize tensors that have a planned format (must outlive us)
    uint64_t weightCacheBytes = 256ull << 20; // decoded weights kept between calls; 0 = pure streaming
    // Round each matmul's input as llama.cpp's CPU backend does before its dot products, by the weight's
    // (planned or stored) type: Q8_0 blocks of 32 (fp16 scale) for Q4_0/Q4_1/Q5_0/Q5_1/Q8_0/IQ4_NL/MXFP4,
    // Q8_K blocks of 256 for the k-quants and the other IQ types, fp16 / bf16 for F16 / BF16 weights, nothing
    // for F32 and for non-ggml formats. With it, perplexity and KL divergence compare with llama-perplexity's
    // to float noise (docs/inference.md); without it they are those of exact float inputs.
    bool llamaCppActivations = false;
};

// How llama.cpp rounds a matmul's input for a weight of this ggml type name ("Q4_K", "F16"; other names:
// none), and the rounding itself on one token's input (n values, a multiple of the block).
enum class ActivationRounding : uint8_t { None, Q8_0, Q8_K, F16, BF16 };
ActivationRounding llamaCppActivationRounding(std::string_view typeName);
void roundActivations(ActivationRounding kind, float* x, size_t n);

// The input of one linear layer, given to a hook before the matmul (calibration statistics, importance).
struct LinearInput {
    uint32_t layer;
    const std::string& tensor; // the weight's name in the model
    const Eigen::MatrixXf& x;  // in_features x tokens (all sequences of the batch, in order)
};
using LinearHook = std::function<void(const LinearInput&)>;

// The tensors of one decoder layer, by role (the names are the model's own: GGUF or Hugging Face).
struct LayerTensors {
    std::string attnNorm, q, k, v, o, ffnNorm, gate, up, down;
};

// Hidden states of a batch of whole sequences (each starting at position 0) between two layers: the
// layer-wise path used by calibration work (GPTQ, AWQ, measured sensitivity), which runs one layer at a time
// and keeps no KV cache beyond the layer being run.
struct HiddenStates {
    Eigen::MatrixXf x;                 // hidden x total tokens, sequences in order
    std::vector<Eigen::Index> lengths; // tokens of each sequence
};

// Keys and values of the positions a sequence has seen, per layer.
class KvCache {
public:
    size_t length() const { return m_length; }
    void clear() { m_length = 0; }

private:
    friend class Transformer;
    std::vector<Eigen::MatrixXf> m_k, m_v; // per layer: kvDim x capacity
    size_t m_length = 0;
};

class Transformer {
public:
    // Throws qs::Error(Unsupported) naming the architecture before any work when it cannot run, and
    // qs::Error(BadValue) when the tensors do not match the configuration.
    explicit Transformer(std::shared_ptr<const Model> model, ForwardOptions options = {});
    ~Transformer();

    const TransformerConfig& config() const { return m_config; }
    const Model& model() const { return *m_model; }
    void setLinearHook(LinearHook hook) { m_hook = std::move(hook); }
    const LayerTensors& layerTensors(uint32_t layer) const;
    const std::string& embeddingTensor() const;
    const std::string& outputTensor() const; // == embeddingTensor() when the head is tied to it
    const std::string& outputNormTensor() const;

    // Replaces a tensor's weights (rows x cols row-major, as the model stores it) for every later call:
    // a quantized-and-dequantized GPTQ/AWQ result, a round trip under test, or scaled norm weights. Takes
    // precedence over the plan. nullptr removes the override. Throws qs::Error(BadValue) on a size mismatch.
    void setWeightOverride(const std::string& tensor, std::shared_ptr<const std::vector<float>> weights);
    void clearWeightOverrides();
    // The weights a layer would use now (override, else decoded and, with a plan, fake-quantized).
    std::shared_ptr<const std::vector<float>> weights(const std::string& tensor);

    // Layer-wise path. embed() looks the tokens up (each sequence from position 0; the same checks as
    // forwardBatch); runLayers() runs layers [first, last) in place; logits() applies the final norm and the
    // output projection: vocab x total tokens.
    HiddenStates embed(const std::vector<std::span<const int32_t>>& sequences);
    void runLayers(HiddenStates& h, uint32_t first, uint32_t last);
    Eigen::MatrixXf logits(const HiddenStates& h);

    // Runs `tokens` after the positions already in `cache` and appends them to it. Returns the logits,
    // vocab x tokens.size(), or vocab x 1 (the last position) when lastOnly. Throws qs::Error(BadValue)
    // for a token outside the vocabulary or a context longer than the model's maximum (naming it).
    Eigen::MatrixXf forward(std::span<const int32_t> tokens, KvCache& cache, bool lastOnly = false);
    // The same for several sequences at once; logits[i] belongs to sequences[i].
    std::vector<Eigen::MatrixXf> forwardBatch(const std::vector<std::span<const int32_t>>& sequences,
                                              const std::vector<KvCache*>& caches, bool lastOnly = false);

    // Greedy decoding: runs prompt (may be empty when cache is not) and returns n new tokens; stops early
    // after stopToken when given.
    std::vector<int32_t> generateGreedy(std::span<const int32_t> prompt, size_t n, KvCache& cache,
                                        std::optional<int32_t> stopToken = std::nullopt);

private:
    struct Names;
    const TensorInfo& tensor(const std::string& name) const;
    const TensorInfo* findTensor(const std::string& name) const;
    // Decoded (and, with a plan, fake-quantized) weight as rows x cols row-major floats.
    std::shared_ptr<const std::vector<float>> weight(const TensorInfo& t);
    // y = W x (W rows x cols, x cols x n), rows split across the workers.
    void linear(uint32_t layer, const std::string& name, const Eigen::MatrixXf& x, Eigen::MatrixXf& y);
    void rmsNorm(const std::string& name, Eigen::MatrixXf& x);
    void rope(Eigen::Ref<Eigen::MatrixXf> qk, uint32_t heads, size_t position) const;
    Eigen::MatrixXf embedColumns(const std::vector<std::span<const int32_t>>& sequences,
                                 const std::vector<size_t>& past, std::vector<Eigen::Index>& firstColumn);
    // One decoder layer over x (hidden x total); K/V of sequence s go to columns past[s].. of (*k[s], *v[s]),
    // which hold the earlier positions.
    void layerStep(uint32_t l, Eigen::MatrixXf& x, const std::vector<Eigen::Index>& firstColumn,
                   const std::vector<Eigen::Index>& lengths, const std::vector<size_t>& past,
                   const std::vector<Eigen::MatrixXf*>& k, const std::vector<Eigen::MatrixXf*>& v);

    std::shared_ptr<const Model> m_model;
    ForwardOptions m_options;
    TransformerConfig m_config;
    std::unique_ptr<Names> m_names;
    LinearHook m_hook;
    std::map<std::string, std::shared_ptr<const std::vector<float>>, std::less<>> m_cache;
    std::map<std::string, std::shared_ptr<const std::vector<float>>, std::less<>> m_overrides;
    uint64_t m_cacheBytes = 0;
};

// Reads the configuration the forward pass needs from GGUF keys or config.json (rope base, RMS epsilon,
// rope scaling) on top of Model::config(). Throws qs::Error(Unsupported) for an architecture the forward
// pass does not implement.
TransformerConfig transformerConfig(const Model& model);

} // namespace qs
