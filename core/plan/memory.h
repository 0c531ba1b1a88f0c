#pragma once
// GPU memory footprint of running a model: exact weight bytes of a plan, exact KV-cache bytes, and a
// documented estimate of each runtime's activations and fixed overhead. Every term, its formula and its
// source are described in docs/memory-model.md; keep the two in step.
//
// All functions are pure and cheap (no I/O): the GUI calls them on every plan edit.

#include "core/plan/gpucatalog.h"
#include "core/plan/modellayout.h"

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

// KV-cache element types. Q8_0 / Q4_0 are ggml block types (llama.cpp -ctk/-ctv): a row of
// kv_heads * head_dim values is stored in 32-value blocks of 34 / 18 bytes. FP8 is one byte per value
// (vLLM --kv-cache-dtype fp8; its per-tensor scales are negligible and not counted).
enum class KvCacheType : uint8_t { F16, BF16, FP8, Q8_0, Q4_0 };
const char* kvCacheTypeName(KvCacheType type);                         // "f16", "bf16", "fp8", "q8_0", "q4_0"
std::optional<KvCacheType> kvCacheTypeFromName(std::string_view name); // case-insensitive, "fp8_e4m3" too

enum class Runtime : uint8_t { LlamaCpp, Vllm, Transformers };
const char* runtimeName(Runtime runtime);                      // "llama.cpp", "vllm", "transformers"
std::optional<Runtime> runtimeFromName(std::string_view name); // "llamacpp", "llama.cpp", "vllm", "hf", ...
// Whether the runtime can hold its KV cache in this type (llama.cpp: f16/bf16/q8_0/q4_0; vLLM:
// f16/bf16/fp8; transformers: f16/bf16).
bool runtimeSupportsKvType(Runtime runtime, KvCacheType type);

// transformers' attention implementation (from_pretrained(attn_implementation=...)): "sdpa" (the default,
// torch.nn.functional.scaled_dot_product_attention) or "eager" (explicit scores and a float32 softmax).
enum class AttnImpl : uint8_t { Sdpa, Eager };
const char* attnImplName(AttnImpl impl);                        // "sdpa", "eager"
std::optional<AttnImpl> attnImplFromName(std::string_view name); // case-insensitive

struct RuntimeSettings {
    Runtime runtime = Runtime::LlamaCpp;
    // vLLM: share of each GPU's memory the engine may take (--gpu-memory-utilization, default 0.9).
    double gpuMemoryUtilization = 0.9;
    // vLLM: tokens of the profiling forward pass (--max-num-batched-tokens) and sequences of the sampler
    // warm-up (--max-num-seqs); 0: `vllm serve`'s default for the GPU (vllmServeDefaults).
    uint64_t maxNumBatchedTokens = 0;
    uint32_t maxNumSeqs = 0;
    // llama.cpp: physical batch (-ub, default 512) and flash attention (-fa).
    uint32_t ubatch = 512;
    bool flashAttention = true;
    // llama.cpp: sliding-window layers hold every cell (--swa-full; the C API's default) instead of
    // window + ubatch cells (llama-server's and llama-cli's default).
    bool swaFull = false;
    // transformers: attention implementation, and whether a batch of more than one sequence is padded
    // (prompts of different lengths: generate() then builds a 4-D mask of batch x context x context). The
    // default assumes padding, the safe side; a batch of equal-length prompts has no mask.
    AttnImpl attnImpl = AttnImpl::Sdpa;
    bool paddedBatch = true;
    // Fixed per-GPU overhead (CUDA context, library workspaces, CUDA graphs); nullopt uses the runtime's
    // documented default (llamaCppFixedOverhead for llama.cpp; see docs/memory-model.md).
    std::optional<uint64_t> fixedOverheadBytes;
};

struct FootprintRequest {
    uint64_t context = 4096; // tokens per sequence
    uint32_t batch = 1;      // concurrent sequences
    KvCacheType kvType = KvCacheType::F16;
    RuntimeSettings runtime;
    uint32_t gpuCount = 1; // tensor parallel degree (weights and KV split, overhead per GPU)
    // GpuSpec::architecture of the GPU ("hopper", ...; empty: unknown), for per-architecture defaults.
    std::string gpuArchitecture;
    // The GPU's name and usable memory (0: unknown), for vLLM's batch defaults; fitOnGpu fills them.
    std::string gpuName;
    uint64_t gpuMemoryBytes = 0;
};

// The request with what it needs to know of the GPU filled in where unset (architecture, name, memory).
FootprintRequest requestForGpu(FootprintRequest request, const GpuSpec& gpu);

// `vllm serve`'s defaults for --max-num-batched-tokens and --max-num-seqs (vllm/engine/arg_utils.py,
// get_batch_defaults): 8192 and 1024 on a GPU of at least 70 GiB that is not an A100, else 2048 and 256.
struct VllmBatchDefaults {
    uint64_t tokens = 2048;
    uint32_t seqs = 256;
};
VllmBatchDefaults vllmServeDefaults(std::string_view gpuName, uint64_t gpuMemoryBytes);

// vLLM's start-up profile on one GPU (docs/memory-model.md, "vLLM"): the peak of the profiling forward pass
// and of the sampler warm-up that follows it (the larger counts), the non-torch memory and CUDA graphs
// inside gpu_memory_utilization's budget, and the CUDA context outside it.
struct VllmProfile {
    uint64_t tokens = 0, seqs = 0; // max_num_batched_tokens, sampler rows (min(max_num_seqs, tokens))
    uint64_t forwardBytes = 0;     // tokens x (3 ffn + q + 2 kv (per GPU) + 2 hidden) x 2
    uint64_t samplerBytes = 0;     // hidden states, seqs x vocab x 14, the top-k/top-p buffer
    uint64_t nonTorchBytes = 0;    // inside the budget
    uint64_t cudaGraphBytes = 0;   // inside the budget (vLLM >= 0.21 subtracts its estimate)
    uint64_t contextBytes = 0;     // CUDA context and NCCL set-up, before vLLM's baseline: outside the budget
    uint64_t peakBytes() const { return forwardBytes > samplerBytes ? forwardBytes : samplerBytes; }
};
VllmProfile vllmProfile(const ModelConfig& config, uint64_t ffnWidth, uint64_t qWidth, uint64_t kvWidth,
                        const FootprintRequest& request);

// llama.cpp's fixed per-process overhead on one CUDA GPU: CUDA context, cuBLAS workspace and the memory
// pools ggml grows during decode. Measured on an H200 (Hopper) at about 610 MiB with flash attention and
// 710-730 MiB without; Blackwell, Ada, Ampere, Volta and Turing are estimated from it by their CUDA stack
// reservation and cuBLAS workspace (docs/memory-model.md); unknown architectures use the Hopper figures.
uint64_t llamaCppFixedOverhead(bool flashAttention, std::string_view gpuArchitecture = {});

// The pre-fill of transformers' generate(): one forward pass over context x batch tokens, read from
// transformers' Llama code (docs/memory-model.md, "Hugging Face transformers"). Bytes on one GPU; every
// field is a term of the footprint.
struct HfPrefill {
    uint64_t residentBytes = 0; // alive through the layer loop: hidden states entering the layer, RoPE cos/sin
    uint64_t maskBytes = 0;     // the materialised 4-D attention masks (0 when SDPA runs with is_causal)
    uint64_t layerPeakBytes = 0; // the largest set one decoder layer adds on top (the stage below)
    const char* peakStage = "";  // "rmsnorm", "rope", "attention", "mlp"
    // Per stage, for the breakdown and the tests.
    uint64_t rmsNormBytes = 0, ropeBytes = 0, attentionBytes = 0, mlpBytes = 0;
    // Sliding-window layers keep a view of the whole pre-fill K/V until the first decode step
    // (DynamicSlidingWindowLayer.update), so at the pre-fill peak they hold `context` cells, not the window.
    uint64_t slidingKvExtraBytes = 0;
    uint64_t largestBlockBytes = 0; // the largest per-token transient tensor (allocator term)
    uint64_t activationBytes() const { return residentBytes + maskBytes + layerPeakBytes; }
};
HfPrefill hfPrefill(const ModelConfig& config, uint64_t context, uint32_t batch, const RuntimeSettings& runtime,
                    KvCacheType dtype = KvCacheType::BF16, uint32_t gpuCount = 1);

// Weights as they would be stored: per-tensor bytes come from bytesOf (a plan's formats) or the stored
// bytes. Tied embeddings are counted once: an output head that duplicates a same-shaped embedding of a
// tied model costs nothing.
struct WeightSummary {
    uint64_t bytes = 0; // resident weight bytes
    uint64_t parameters = 0;
    uint64_t readPerTokenBytes = 0; // bytes a decode step streams: all weights except the embedding lookup
                                    // (one row); only expertsUsed/experts of MoE expert weights
    uint64_t embeddingBytes = 0;
    uint64_t outputHeadBytes = 0;
};
using TensorBytesFn = std::function<uint64_t(const TensorInfo&)>;
WeightSummary summarizeWeights(const ModelLayout& model, const TensorBytesFn& bytesOf = {});

// Exact KV-cache bytes: batch * sum over layers of cells * 2 (K and V) * row bytes of kv_heads * head_dim
// values in `type`, where a layer holds `context` cells and a sliding-window layer
// min(context, window + slidingExtraCells) (llama.cpp: the ubatch; vLLM and transformers: 0), or
// `context` when swaFull. Throws qs::Error(BadValue) when the configuration lacks layers / kv heads /
// head_dim or the row is not a multiple of the type's block.
uint64_t kvCacheBytes(const ModelConfig& config, uint64_t context, uint32_t batch, KvCacheType type,
                      uint64_t slidingExtraCells = 0, bool swaFull = false);
// Cells a sliding-window layer holds per sequence (see kvCacheBytes); `context` for other layers.
uint64_t kvCellsOfLayer(const ModelConfig& config, uint32_t layer, uint64_t context,
                        uint64_t slidingExtraCells = 0, bool swaFull = false);
// Whether the configuration describes attention (layers, kv heads, head_dim). Without it the footprint
// counts no KV cache (a model we know only the tensors of).
bool hasAttentionConfig(const ModelConfig& config);
// Bytes one token adds to the cache in one (non-sliding) layer: 2 * row bytes.
uint64_t kvBytesPerTokenPerLayer(const ModelConfig& config, KvCacheType type);

// One named line of the breakdown, for tooltips and the CLI.
struct FootprintTerm {
    std::string name; // "weights", "kv_cache", "compute_buffer", "cuda_context", ...
    uint64_t bytes = 0;
    std::string detail; // formula with the numbers filled in
};

// Per-GPU footprint (with gpuCount > 1, each GPU's share).
struct Footprint {
    uint64_t weightsBytes = 0; // weights on the GPU
    // Weights the runtime keeps in host memory, not on the GPU: llama.cpp's token-embedding table (only
    // read by row lookup; src/llama-model.cpp places the input layer on the CPU). Not part of totalBytes.
    uint64_t hostWeightsBytes = 0;
    uint64_t kvCacheBytes = 0;
    uint64_t activationBytes = 0;    // runtime buffers that scale with batch / context
    uint64_t fixedOverheadBytes = 0; // CUDA context, workspaces, graphs
    // On the GPU but outside the runtime's budget (vLLM's CUDA context, taken before its baseline): the
    // budget (gpuBudgetBytes) plus this must fit in the usable memory. Not part of totalBytes.
    uint64_t outsideBudgetBytes = 0;
    std::vector<FootprintTerm> terms;

    uint64_t overheadBytes() const { return activationBytes + fixedOverheadBytes; }
    uint64_t totalBytes() const { return weightsBytes + kvCacheBytes + overheadBytes(); }
};
Footprint estimateFootprint(const ModelLayout& model, const WeightSummary& weights,
                            const FootprintRequest& request);

// Memory a runtime may use on one GPU: usable bytes, times gpu_memory_utilization for vLLM.
uint64_t gpuBudgetBytes(const GpuSpec& gpu, const RuntimeSettings& runtime);
// The usable memory beside that budget (vLLM keeps its CUDA context there; 0 for the other runtimes).
uint64_t besideBudgetBytes(const GpuSpec& gpu, const RuntimeSettings& runtime);

struct GpuFit {
    Footprint footprint;   // per GPU at request.gpuCount
    uint64_t gpuBytes = 0; // budget per GPU (gpuBudgetBytes)
    bool fits = false;
    int64_t headroomBytes = 0; // budget - total, negative when it does not fit
    // Largest context (tokens per sequence, same batch) that fits, from the memory alone and capped at the
    // model's trained context when known; 0 when not even an empty cache fits.
    uint64_t maxContext = 0;
    uint64_t maxContextByMemory = 0;
    // Smallest number of these GPUs (tensor parallel) that holds the request; 0 when even 64 do not. For
    // vLLM only degrees dividing the attention head count are considered.
    uint32_t gpusNeeded = 0;
    // Upper bound on decode speed (all sequences together) from memory bandwidth alone: every step
    // streams the per-token weights and the whole KV cache once, batch tokens per step.
    double maxDecodeTokensPerSecond = 0;
};
GpuFit fitOnGpu(const ModelLayout& model, const WeightSummary& weights, const FootprintRequest& request,
                const GpuSpec& gpu);

// The largest context whose footprint is <= budgetBytes per GPU (total(context) is non-decreasing, so the
// answer is found by bisection over [0, 2^40]; exact, not an approximation).
uint64_t maxContextForBudget(const ModelLayout& model, const WeightSummary& weights, FootprintRequest request,
                             uint64_t budgetBytes);

} // namespace qs
