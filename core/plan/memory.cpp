#include "core/plan/memory.h"

#include "core/util/checked.h"
#include "core/util/error.h"
#include "core/util/strings.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>

namespace qs {

namespace {

constexpr uint64_t MiB = 1ull << 20;

// Defaults of the fixed per-GPU overhead, see docs/memory-model.md ("Fixed overhead").
// vLLM (docs/memory-model.md, "vLLM"; fitted to the start-up logs of v0.19 on H100s listed there).
constexpr uint64_t kVllmNonTorch = 256 * MiB;        // inside the budget, one GPU
constexpr uint64_t kVllmNonTorchTp = 2150 * MiB;     // inside the budget, per GPU under tensor parallelism
constexpr uint64_t kVllmGraphBase = 420 * MiB;       // CUDA graphs: 0.91 GiB at 32 layers, 1.66 at 80
constexpr uint64_t kVllmGraphPerLayer = 16 * MiB;
constexpr uint64_t kVllmContext = 512 * MiB;         // before vLLM's baseline: outside the budget
constexpr uint64_t kVllmContextTp = 1536 * MiB;      // with NCCL set up
constexpr uint64_t kVllmSamplerSms = 132;            // rows of the top-k/top-p buffer: min(SMs, seqs) (H100)
constexpr uint64_t kTransformersFixed = 512 * MiB; // PyTorch CUDA context with its kernel images
constexpr uint64_t kNcclPerGpu = 256 * MiB;        // NCCL buffers when more than one GPU is used

std::string gibText(uint64_t bytes)
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f GiB", static_cast<double>(bytes) / double(1ull << 30));
    return buf;
}

uint64_t mul(uint64_t a, uint64_t b)
{
    auto r = checkedMul(a, b);
    if (!r)
        throw Error(ErrorCode::Overflow, "memory estimate overflows 64 bits");
    return *r;
}

uint64_t add(uint64_t a, uint64_t b)
{
    auto r = checkedAdd(a, b);
    if (!r)
        throw Error(ErrorCode::Overflow, "memory estimate overflows 64 bits");
    return *r;
}

uint64_t ceilDiv(uint64_t a, uint64_t b)
{
    return b == 0 ? a : a / b + (a % b != 0);
}

bool isSlidingLayer(const ModelConfig& c, uint32_t layer)
{
    if (c.slidingWindow == 0)
        return false;
    if (c.slidingWindowLayers.empty())
        return true;
    return std::find(c.slidingWindowLayers.begin(), c.slidingWindowLayers.end(), layer) !=
           c.slidingWindowLayers.end();
}

} // namespace

const char* kvCacheTypeName(KvCacheType type)
{
    switch (type) {
    case KvCacheType::F16:
        return "f16";
    case KvCacheType::BF16:
        return "bf16";
    case KvCacheType::FP8:
        return "fp8";
    case KvCacheType::Q8_0:
        return "q8_0";
    case KvCacheType::Q4_0:
        return "q4_0";
    }
    return "f16";
}

std::optional<KvCacheType> kvCacheTypeFromName(std::string_view name)
{
    const std::string n = lower(name);
    if (n == "f16" || n == "fp16" || n == "float16" || n == "half" || n == "auto")
        return KvCacheType::F16;
    if (n == "bf16" || n == "bfloat16")
        return KvCacheType::BF16;
    if (n == "fp8" || n == "f8" || n == "fp8_e4m3" || n == "fp8_e5m2" || n == "e4m3" || n == "e5m2")
        return KvCacheType::FP8;
    if (n == "q8_0" || n == "q8")
        return KvCacheType::Q8_0;
    if (n == "q4_0" || n == "q4")
        return KvCacheType::Q4_0;
    return std::nullopt;
}

const char* runtimeName(Runtime runtime)
{
    switch (runtime) {
    case Runtime::LlamaCpp:
        return "llama.cpp";
    case Runtime::Vllm:
        return "vllm";
    case Runtime::Transformers:
        return "transformers";
    }
    return "llama.cpp";
}

std::optional<Runtime> runtimeFromName(std::string_view name)
{
    const std::string n = lower(name);
    if (n == "llama.cpp" || n == "llamacpp" || n == "llama_cpp" || n == "llama-cpp" || n == "gguf")
        return Runtime::LlamaCpp;
    if (n == "vllm")
        return Runtime::Vllm;
    if (n == "transformers" || n == "hf" || n == "huggingface" || n == "hf-transformers")
        return Runtime::Transformers;
    return std::nullopt;
}

bool runtimeSupportsKvType(Runtime runtime, KvCacheType type)
{
    switch (runtime) {
    case Runtime::LlamaCpp:
        return type != KvCacheType::FP8;
    case Runtime::Vllm:
        return type == KvCacheType::F16 || type == KvCacheType::BF16 || type == KvCacheType::FP8;
    case Runtime::Transformers:
        return type == KvCacheType::F16 || type == KvCacheType::BF16;
    }
    return false;
}

const char* attnImplName(AttnImpl impl)
{
    return impl == AttnImpl::Eager ? "eager" : "sdpa";
}

std::optional<AttnImpl> attnImplFromName(std::string_view name)
{
    const std::string n = lower(name);
    if (n == "sdpa")
        return AttnImpl::Sdpa;
    if (n == "eager")
        return AttnImpl::Eager;
    return std::nullopt;
}

HfPrefill hfPrefill(const ModelConfig& c, uint64_t context, uint32_t batchIn, const RuntimeSettings& rt,
                    KvCacheType dtype, uint32_t gpuCount)
{
    // Every figure below is read from transformers' code (docs/memory-model.md, "Hugging Face transformers",
    // names the files and functions). e: bytes of the model dtype (bf16/f16).
    HfPrefill p;
    const uint64_t n = std::max<uint32_t>(1, gpuCount);
    const uint64_t B = std::max<uint32_t>(1, batchIn), S = context, T = mul(S, B), e = 2;
    const uint64_t H = c.hiddenSize, d = c.headDim;
    const uint64_t heads = ceilDiv(c.heads, n), kvHeads = std::max<uint64_t>(1, ceilDiv(c.kvHeads, n));
    const uint64_t q = heads * d, kv = kvHeads * d;
    const uint64_t F = ceilDiv(uint64_t(c.intermediateSize) * (c.experts > 0 ? std::max<uint32_t>(1, c.expertsUsed) : 1), n);
    const bool eager = rt.attnImpl == AttnImpl::Eager;
    const bool padded = rt.paddedBatch && B > 1;
    const bool gqa = kvHeads < heads; // repeat_kv copies K and V to every query head when it runs

    // Resident through the layer loop: the hidden states entering the layer (the caller's reference keeps
    // them alive while the layer builds the next ones) and RoPE's cos and sin (batch x context x head_dim).
    p.residentBytes = mul(T, add(mul(H, e), mul(2 * d, e)));

    // Which layers get a 4-D mask (masking_utils: sdpa_mask returns None when the causal pattern can be
    // left to is_causal: no padding and, for a sliding layer, context < window; eager_mask always builds one).
    bool anySliding = false, anyFull = false;
    for (uint32_t l = 0; l < c.layers; ++l)
        (isSlidingLayer(c, l) ? anySliding : anyFull) = true;
    if (c.layers == 0)
        anyFull = true;
    const bool slidingMasked = anySliding && (padded || S >= c.slidingWindow);
    const uint64_t square = mul(S, S);
    auto maskOf = [&](bool present) -> uint64_t {
        if (!present && !eager)
            return 0;
        // SDPA: a boolean mask, batch x 1 x S x S when padded (the padding mask broadcast into it), else
        // 1 x 1 x S x S expanded (a view). Eager: torch.where into the dtype at the broadcast shape, B x S x S.
        return eager ? mul(mul(square, B), e) : mul(square, padded ? B : 1);
    };
    const bool fullMasked = anyFull && padded;
    if (anyFull)
        p.maskBytes = add(p.maskBytes, maskOf(fullMasked));
    if (anySliding)
        p.maskBytes = add(p.maskBytes, maskOf(slidingMasked));

    // Per decoder layer, beyond the resident set (bytes per token unless noted):
    // RMSNorm: the float32 upcast of the hidden states and its square (then the normalised product) = 8 H.
    p.rmsNormBytes = mul(T, 8 * H);
    // Attention projections with RoPE: the normed input, q, k, v and, while q is rotated, q*cos,
    // rotate_half(q)*sin and their sum (3 more q); while k is rotated, the rotated q and 3 more k.
    p.ropeBytes = mul(mul(T, add(H, add(2 * kv, std::max(4 * q, 2 * q + 3 * kv)))), e);
    // The attention call itself: normed input, rotated q, the output and its transposed contiguous copy;
    // the layer's K and V are in the cache (counted there).
    uint64_t attention = 0;
    if (eager) {
        // eager_attention_forward: repeat_kv (K and V for every head), then scores = q k^T * scale + mask and
        // softmax(dtype=float32).to(dtype). At the softmax the input scores (e), their float32 copy (4, bf16
        // only: ATen's fused half-to-float softmax is for float16) and the float32 result (4) are alive.
        const uint64_t perScore = dtype == KvCacheType::F16 ? 2 + 4 + 2 : 2 + 4 + 4;
        const uint64_t scores = mul(mul(mul(square, B), heads), perScore);
        attention = add(mul(mul(T, add(H, add(q, gqa ? 2 * q : 0))), e), scores);
    } else {
        // sdpa_attention_forward: with a mask, SDPA cannot take GQA itself (use_gqa_in_sdpa), so repeat_kv
        // runs, and PyTorch converts the boolean mask to an additive one in the dtype (B x S x S x e, plus a
        // B x S x S inverted copy in the versions that invert it first). The kernel's log-sum-exp is float32
        // per head and token.
        auto call = [&](bool masked) {
            uint64_t perToken = add(mul(add(H, add(3 * q, masked && gqa ? 2 * q : 0)), e), 4 * heads);
            uint64_t b = mul(T, perToken);
            if (masked)
                b = add(b, mul(mul(square, B), e + 1));
            return b;
        };
        if (anyFull)
            attention = std::max(attention, call(fullMasked));
        if (anySliding)
            attention = std::max(attention, call(slidingMasked));
    }
    p.attentionBytes = attention;
    // MLP: the hidden states after attention (the residual), the normed input, and act(gate) * up with both
    // factors alive = 2 H + 3 F.
    p.mlpBytes = mul(mul(T, add(2 * H, 3 * F)), e);

    p.layerPeakBytes = std::max({p.rmsNormBytes, p.ropeBytes, p.attentionBytes, p.mlpBytes});
    p.peakStage = p.layerPeakBytes == p.mlpBytes         ? "mlp"
                  : p.layerPeakBytes == p.attentionBytes ? "attention"
                  : p.layerPeakBytes == p.ropeBytes      ? "rope"
                                                         : "rmsnorm";
    // The largest per-token block (the allocator term): an MLP intermediate or RMSNorm's float32 copy. The
    // cache's allocations are served best-fit from the smallest free block that holds them, which is one of
    // these, not eager's larger score blocks.
    p.largestBlockBytes = std::max(mul(mul(T, F), e), mul(T, 4 * H));

    if (hasAttentionConfig(c) && anySliding) {
        ModelConfig perGpu = c;
        perGpu.kvHeads = static_cast<uint32_t>(kvHeads);
        p.slidingKvExtraBytes = kvCacheBytes(perGpu, S, static_cast<uint32_t>(B), dtype, 0, true) -
                                kvCacheBytes(perGpu, S, static_cast<uint32_t>(B), dtype, 0, false);
    }
    return p;
}

bool hasAttentionConfig(const ModelConfig& config)
{
    return config.layers > 0 && config.kvHeads > 0 && config.headDim > 0;
}

uint64_t kvBytesPerTokenPerLayer(const ModelConfig& config, KvCacheType type)
{
    if (config.layers == 0 || config.kvHeads == 0 || config.headDim == 0)
        throw Error(ErrorCode::BadValue,
                    "the model configuration lacks layers, kv heads or head_dim: cannot size the KV cache");
    const uint64_t row = mul(config.kvHeads, config.headDim);
    uint64_t rowBytes = 0;
    switch (type) {
    case KvCacheType::F16:
    case KvCacheType::BF16:
        rowBytes = mul(row, 2);
        break;
    case KvCacheType::FP8:
        rowBytes = row;
        break;
    case KvCacheType::Q8_0:
    case KvCacheType::Q4_0: {
        auto b = dtypeByteSize(type == KvCacheType::Q8_0 ? DType::Q8_0 : DType::Q4_0, row);
        if (!b)
            throw Error(ErrorCode::BadValue, "a KV row of " + std::to_string(row) +
                                                 " values is not a multiple of the 32-value block of " +
                                                 kvCacheTypeName(type));
        rowBytes = *b;
        break;
    }
    }
    return mul(rowBytes, 2);
}

uint64_t kvCellsOfLayer(const ModelConfig& config, uint32_t layer, uint64_t context, uint64_t slidingExtraCells,
                        bool swaFull)
{
    if (swaFull || !isSlidingLayer(config, layer))
        return context;
    return std::min<uint64_t>(context, add(config.slidingWindow, slidingExtraCells));
}

uint64_t kvCacheBytes(const ModelConfig& config, uint64_t context, uint32_t batch, KvCacheType type,
                      uint64_t slidingExtraCells, bool swaFull)
{
    const uint64_t perLayer = kvBytesPerTokenPerLayer(config, type);
    uint64_t tokens = 0; // token-layers of one sequence
    for (uint32_t l = 0; l < config.layers; ++l)
        tokens = add(tokens, kvCellsOfLayer(config, l, context, slidingExtraCells, swaFull));
    return mul(mul(tokens, perLayer), batch);
}

uint64_t llamaCppFixedOverhead(bool flashAttention, std::string_view gpuArchitecture)
{
    // Measured on an H200 (Hopper): 610 MiB with flash attention, 720 MiB without (docs/memory-model.md,
    // "Fixed overhead"). The other architectures are estimates from it: the two parts that differ by
    // device are the CUDA stack reservation (cudaLimitStackSize, 1 KiB per thread by default, times the
    // SMs times the resident threads per SM) and cuBLAS's workspace (32 MiB on Hopper and later, 4 MiB
    // before); the rest (kernel images, ggml's pools) is taken as Hopper's. Each row is the largest part
    // of its architecture, so that the estimate errs on the safe side.
    struct Row {
        const char* architecture;
        uint64_t sms, threadsPerSm, cublasMiB;
    };
    static constexpr Row kHopper = {"hopper", 132, 2048, 32}; // H100 SXM / H200
    static constexpr Row kRows[] = {
        kHopper,
        {"blackwell", 148, 2048, 32}, // B200
        {"ada", 142, 1536, 4},        // L40S, RTX 6000 Ada
        {"ampere", 108, 2048, 4},     // A100
        {"volta", 80, 2048, 4},       // V100
        {"turing", 40, 1024, 4},      // T4
    };
    const uint64_t measured = (flashAttention ? 610 : 720) * MiB;
    auto stack = [](const Row& r) { return r.sms * r.threadsPerSm * 1024; };
    const std::string arch = lower(gpuArchitecture);
    for (const auto& r : kRows)
        if (arch == r.architecture)
            return measured - stack(kHopper) - kHopper.cublasMiB * MiB + stack(r) + r.cublasMiB * MiB;
    return measured; // unknown architecture: Hopper's measurement
}

WeightSummary summarizeWeights(const ModelLayout& model, const TensorBytesFn& bytesOf)
{
    WeightSummary s;
    const auto& cfg = model.config;
    // A tied model whose file still carries the head as a separate tensor holds one copy at run time.
    std::vector<std::vector<uint64_t>> embeddingShapes;
    bool hasHead = false;
    for (const auto& t : model.tensors) {
        const auto role = planRole(t).role;
        if (role == TensorRole::Embedding)
            embeddingShapes.push_back(t.shape);
        if (role == TensorRole::OutputHead)
            hasHead = true;
    }
    for (const auto& t : model.tensors) {
        const auto role = planRole(t);
        uint64_t b = bytesOf ? bytesOf(t) : t.bytes;
        if (role.role == TensorRole::OutputHead && cfg.tiedEmbeddings &&
            std::find(embeddingShapes.begin(), embeddingShapes.end(), t.shape) != embeddingShapes.end()) {
            hasHead = false; // the embedding below is what the head reads
            continue;
        }
        s.bytes = add(s.bytes, b);
        s.parameters = add(s.parameters, t.elements());
        uint64_t read = b;
        switch (role.role) {
        case TensorRole::Embedding:
            s.embeddingBytes += b;
            break;
        case TensorRole::OutputHead:
            s.outputHeadBytes += b;
            break;
        case TensorRole::MoeExpertGate:
        case TensorRole::MoeExpertUp:
        case TensorRole::MoeExpertDown:
            if (cfg.experts > 0 && cfg.expertsUsed > 0 && cfg.expertsUsed < cfg.experts)
                read = static_cast<uint64_t>(static_cast<long double>(b) * cfg.expertsUsed / cfg.experts);
            break;
        default:
            break;
        }
        if (role.role != TensorRole::Embedding)
            s.readPerTokenBytes = add(s.readPerTokenBytes, read);
    }
    // Embedding lookups read one row per token, unless the embedding doubles as the output head.
    bool embeddingIsHead = cfg.tiedEmbeddings || !hasHead;
    for (const auto& t : model.tensors) {
        if (planRole(t).role != TensorRole::Embedding)
            continue;
        const uint64_t b = bytesOf ? bytesOf(t) : t.bytes;
        const uint64_t rows = t.shape.empty() ? 1 : std::max<uint64_t>(1, t.shape.front());
        s.readPerTokenBytes = add(s.readPerTokenBytes, embeddingIsHead ? b : ceilDiv(b, rows));
        embeddingIsHead = false; // only the first embedding can be the head
    }
    return s;
}

FootprintRequest requestForGpu(FootprintRequest request, const GpuSpec& gpu)
{
    if (request.gpuArchitecture.empty())
        request.gpuArchitecture = gpu.architecture; // per-architecture defaults (fixed overhead)
    if (request.gpuName.empty())
        request.gpuName = gpu.name;
    if (request.gpuMemoryBytes == 0)
        request.gpuMemoryBytes = gpu.usableBytes(); // vLLM's batch defaults
    return request;
}

VllmBatchDefaults vllmServeDefaults(std::string_view gpuName, uint64_t gpuMemoryBytes)
{
    std::string lower(gpuName);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (gpuMemoryBytes >= 70ull * (1ull << 30) && lower.find("a100") == std::string::npos)
        return {8192, 1024};
    return {};
}

VllmProfile vllmProfile(const ModelConfig& c, uint64_t ffnWidth, uint64_t qWidth, uint64_t kvWidth,
                        const FootprintRequest& request)
{
    const RuntimeSettings& rt = request.runtime;
    const uint32_t n = std::max<uint32_t>(1, request.gpuCount);
    const VllmBatchDefaults d = vllmServeDefaults(request.gpuName, request.gpuMemoryBytes);
    VllmProfile p;
    p.tokens = rt.maxNumBatchedTokens ? rt.maxNumBatchedTokens : d.tokens;
    p.seqs = std::min<uint64_t>(rt.maxNumSeqs ? rt.maxNumSeqs : d.seqs, p.tokens);
    const uint64_t H = c.hiddenSize, V = c.vocabSize;
    // The profiling forward pass (gpu_model_runner.py profile_run -> _dummy_run, attention skipped): the
    // gate/up output, the activated product, the fused QKV output and two hidden-state buffers, in BF16.
    p.forwardBytes =
        mul(p.tokens, mul(add(mul(3, ceilDiv(ffnWidth, n)), add(ceilDiv(qWidth + 2 * kvWidth, n), 2 * H)), 2));
    // The sampler warm-up that follows (_dummy_sampler_run, top-k and top-p on): the pass's hidden states
    // (tokens x H), the sampled rows and a noise copy of them (2 x seqs x H), the all-gathered logits (not
    // split by tensor parallelism) in BF16 (2), their float32 copy (4), the probabilities (4) and the
    // exponential noise (4), and the top-k/top-p kernel's float32 buffer of min(SMs, seqs) rows.
    p.samplerBytes = add(add(mul(mul(p.tokens, H), 2), mul(mul(2 * p.seqs, H), 2)),
                         add(mul(mul(p.seqs, V), 14), mul(mul(std::min(kVllmSamplerSms, p.seqs), V), 4)));
    p.nonTorchBytes = n > 1 ? kVllmNonTorchTp : kVllmNonTorch;
    p.cudaGraphBytes = add(kVllmGraphBase, mul(kVllmGraphPerLayer, c.layers));
    p.contextBytes = n > 1 ? kVllmContextTp : kVllmContext;
    return p;
}

uint64_t gpuBudgetBytes(const GpuSpec& gpu, const RuntimeSettings& runtime)
{
    const uint64_t usable = gpu.usableBytes();
    if (runtime.runtime != Runtime::Vllm)
        return usable;
    const double u = std::clamp(runtime.gpuMemoryUtilization, 0.0, 1.0);
    return static_cast<uint64_t>(std::floor(static_cast<double>(usable) * u));
}

uint64_t besideBudgetBytes(const GpuSpec& gpu, const RuntimeSettings& runtime)
{
    const uint64_t usable = gpu.usableBytes();
    return usable - std::min(usable, gpuBudgetBytes(gpu, runtime));
}

Footprint estimateFootprint(const ModelLayout& model, const WeightSummary& weights,
                            const FootprintRequest& request)
{
    const ModelConfig& c = model.config;
    const uint32_t n = std::max<uint32_t>(1, request.gpuCount);
    const uint32_t batch = std::max<uint32_t>(1, request.batch);
    Footprint f;

    const RuntimeSettings& rt = request.runtime;
    // llama.cpp keeps the input layer (the token-embedding table, read one row per token) in host memory
    // (src/llama-model.cpp: dev_input is the CPU). A tied model's head is that table: llama.cpp loads it
    // a second time, as the output layer, on the GPU.
    const bool tied = weights.outputHeadBytes == 0;
    uint64_t gpuWeights = weights.bytes;
    if (rt.runtime == Runtime::LlamaCpp && weights.embeddingBytes > 0) {
        f.hostWeightsBytes = weights.embeddingBytes;
        if (!tied)
            gpuWeights -= std::min(gpuWeights, weights.embeddingBytes);
    }
    f.weightsBytes = ceilDiv(gpuWeights, n);
    f.terms.push_back(
        {"weights", f.weightsBytes,
         std::string(n > 1 ? "plan bytes " + std::to_string(gpuWeights) + " / " + std::to_string(n) + " GPUs"
                           : "exact bytes of every tensor in its planned format") +
             (f.hostWeightsBytes && !tied ? ", token embedding in host memory" : "")});
    if (f.hostWeightsBytes)
        f.terms.push_back({"host_weights", f.hostWeightsBytes,
                           tied ? "token-embedding table in host memory (tied: also on the GPU as the head)"
                                : "token-embedding table in host memory (not on the GPU)"});

    // KV heads are split across tensor-parallel ranks; a rank always holds at least one (vLLM replicates
    // KV heads when there are fewer than ranks).
    ModelConfig perGpu = c;
    perGpu.kvHeads = static_cast<uint32_t>(std::max<uint64_t>(1, ceilDiv(c.kvHeads, n)));
    if (!hasAttentionConfig(c)) {
        // Not a transformer we know the attention of (a vision model, an HDF5 file): no cache to count.
        f.terms.push_back(
            {"kv_cache", 0, "no attention configuration (layers, kv heads, head_dim): not counted"});
    } else {
        const uint64_t slidingExtra = request.runtime.runtime == Runtime::LlamaCpp ? request.runtime.ubatch : 0;
        f.kvCacheBytes =
            kvCacheBytes(perGpu, request.context, batch, request.kvType, slidingExtra, request.runtime.swaFull);
        f.terms.push_back(
            {"kv_cache", f.kvCacheBytes,
             std::to_string(batch) + " x " + std::to_string(request.context) + " tokens x " +
                 std::to_string(c.layers) + " layers x 2 x " + std::to_string(perGpu.kvHeads) +
                 " kv heads x " + std::to_string(c.headDim) + " head_dim, " +
                 kvCacheTypeName(request.kvType) +
                 (!c.slidingWindow ? std::string()
                  : request.runtime.swaFull && request.runtime.runtime == Runtime::LlamaCpp
                      ? std::string(", sliding layers hold every cell (swa_full)")
                      : ", sliding layers capped at " + std::to_string(c.slidingWindow) +
                            (slidingExtra ? " + " + std::to_string(slidingExtra) + " (ubatch)" : std::string()))});
    }

    const uint64_t H = c.hiddenSize, I = c.intermediateSize, V = c.vocabSize;
    const uint64_t q = uint64_t(c.heads) * c.headDim, kv = uint64_t(c.kvHeads) * c.headDim;
    const uint64_t ffnWidth = c.experts > 0 ? I * std::max<uint32_t>(1, c.expertsUsed) : I;

    switch (rt.runtime) {
    case Runtime::LlamaCpp: {
        // ggml's graph allocator reserves the worst-case graph of one physical batch (ubatch tokens against
        // the full cache) and reuses memory between nodes, so the buffer is the largest live set
        // (src/llama-context.cpp graph_reserve, ggml-alloc). Terms: docs/memory-model.md.
        const uint64_t tokens =
            std::max<uint64_t>(1, std::min<uint64_t>(rt.ubatch, mul(request.context, batch)));
        const uint64_t nkv = mul(request.context, batch);
        // The KQ mask (src/llama-graph.cpp build_attn_inp_kq_mask): n_kv x n_tokens, F16 with flash
        // attention, F32 without; one for the full layers and one for the sliding layers. It is an input
        // every layer's attention reads, so it stays allocated through the whole layer loop.
        bool anySliding = false, anyFull = false;
        for (uint32_t l = 0; l < c.layers; ++l)
            (isSlidingLayer(c, l) ? anySliding : anyFull) = true;
        const uint64_t maskElem = rt.flashAttention ? 2 : 4;
        uint64_t mask = 0;
        if (anyFull || c.layers == 0)
            mask = add(mask, mul(mul(tokens, nkv), maskElem));
        if (anySliding) {
            const uint64_t swaCells = rt.swaFull ? request.context
                                                 : std::min<uint64_t>(request.context, add(c.slidingWindow, rt.ubatch));
            mask = add(mask, mul(mul(tokens, mul(swaCells, batch)), maskElem));
        }
        const uint64_t output = mul(mul(tokens, add(V, H)), 4);
        // Gate, up and their product (3 x width) with the residual, the normed input and the result
        // (3 x hidden), in F32; fitted to a Mistral-7B log (110 MiB at 2k, 140 MiB at 32k with -fa).
        const uint64_t ffn = add(mul(mul(tokens, add(mul(3, ffnWidth), mul(3, H))), 4), mask);
        uint64_t attn = add(mul(mul(tokens, q + 2 * kv + 2 * H), 4), mask);
        if (rt.flashAttention) {
            // Quantized caches are converted to F16 views for the flash-attention kernel.
            if (request.kvType == KvCacheType::Q8_0 || request.kvType == KvCacheType::Q4_0)
                attn = add(attn, mul(mul(nkv, ceilDiv(kv, n)), 4));
        } else {
            attn = add(attn, mul(mul(mul(tokens, nkv), ceilDiv(c.heads, n)), 4)); // KQ scores in F32
        }
        const uint64_t compute = std::max({output, ffn, attn});
        f.activationBytes = compute;
        const char* which = compute == output ? "output logits"
                            : compute == ffn  ? "feed-forward"
                                              : "attention";
        f.terms.push_back({"compute_buffer", compute,
                           std::string("llama.cpp graph buffer for ubatch ") + std::to_string(tokens) +
                               ", largest: " + which +
                               (rt.flashAttention ? " (flash attention, F16 mask " : " (no flash attention, F32 mask ") +
                               std::to_string(mask) + " bytes)"});
        f.fixedOverheadBytes =
            rt.fixedOverheadBytes.value_or(llamaCppFixedOverhead(rt.flashAttention, request.gpuArchitecture));
        f.terms.push_back({"cuda_context", f.fixedOverheadBytes,
                           std::string("CUDA context, cuBLAS workspace, ggml pools (measured, ") +
                               (rt.flashAttention ? "flash attention)" : "no flash attention)")});
        break;
    }
    case Runtime::Vllm: {
        const VllmProfile p = vllmProfile(c, ffnWidth, q, kv, request);
        f.activationBytes = p.peakBytes();
        const std::string tokens = std::to_string(p.tokens) + " tokens (max_num_batched_tokens)";
        const std::string sampler = "sampler warm-up of " + std::to_string(p.seqs) + " sequences x vocab " +
                                    std::to_string(V) + " (logits, float32 copy, probabilities, noise)";
        f.terms.push_back({"profile_peak", f.activationBytes,
                           p.samplerBytes >= p.forwardBytes
                               ? sampler + "; the forward pass of " + tokens + " needs " +
                                     gibText(p.forwardBytes)
                               : "forward pass of " + tokens + "; the " + sampler + " needs " +
                                     gibText(p.samplerBytes)});
        if (rt.fixedOverheadBytes) {
            f.fixedOverheadBytes = *rt.fixedOverheadBytes;
            f.terms.push_back({"fixed_overhead", f.fixedOverheadBytes, "measured (given)"});
            break;
        }
        f.fixedOverheadBytes = add(p.nonTorchBytes, p.cudaGraphBytes);
        f.terms.push_back({"non_torch", p.nonTorchBytes,
                           n > 1 ? "non-torch memory per GPU under tensor parallelism (NCCL, custom all-reduce)"
                                 : "non-torch memory after vLLM's baseline (cuBLAS, allocator)"});
        f.terms.push_back({"cuda_graphs", p.cudaGraphBytes,
                           "CUDA graphs for " + std::to_string(c.layers) +
                               " layers (subtracted from the KV budget since vLLM 0.21)"});
        f.outsideBudgetBytes = p.contextBytes;
        f.terms.push_back({"cuda_context", p.contextBytes,
                           "CUDA context" + std::string(n > 1 ? " and NCCL set-up" : "") +
                               ", outside gpu_memory_utilization's budget (not in the total)"});
        break;
    }
    case Runtime::Transformers: {
        // generate() pre-fills the whole prompt in one forward pass; the peak is that pass's last layer, with
        // the cache of every layer written (docs/memory-model.md, "Hugging Face transformers").
        const HfPrefill p = hfPrefill(c, request.context, batch, rt, request.kvType, n);
        const std::string tokens = std::to_string(request.context) + " x " + std::to_string(batch) + " tokens";
        f.terms.push_back({"prefill_resident", p.residentBytes,
                           tokens + ": hidden states entering the layer and RoPE cos/sin (model dtype)"});
        if (p.maskBytes)
            f.terms.push_back({"attention_mask", p.maskBytes,
                               std::string(rt.attnImpl == AttnImpl::Eager
                                               ? "4-D float mask in the model dtype (eager)"
                                               : "4-D boolean mask (padded batch or sliding window)")});
        f.terms.push_back({"prefill_layer_peak", p.layerPeakBytes,
                           std::string("largest set of one decoder layer: ") + p.peakStage + " (" +
                               attnImplName(rt.attnImpl) + (rt.paddedBatch && batch > 1 ? ", padded batch)" : ")")});
        if (p.slidingKvExtraBytes)
            f.terms.push_back({"prefill_sliding_kv", p.slidingKvExtraBytes,
                               "sliding layers keep the whole pre-fill K/V until the first decode step"});
        // generate() asks for the last position's logits only (logits_to_keep = 1): batch x vocab in the
        // model dtype (2 bytes), copied to float32 (4) for the logits processors, and the float32
        // probabilities sampling takes (4): 10 bytes per vocabulary entry and sequence.
        const uint64_t logits = mul(mul(batch, V), 10);
        f.terms.push_back({"logits", logits, "last-token logits (model dtype), their float32 copy and probabilities"});
        const uint64_t act = add(p.activationBytes(), p.slidingKvExtraBytes);
        // The caching allocator: 5 % of activations and cache, plus one largest transient block, which the
        // cache growing layer by layer between the activations can leave stranded (an estimate, not measured).
        const uint64_t slack = add(add(act, f.kvCacheBytes) / 20, p.largestBlockBytes);
        f.activationBytes = add(add(act, logits), slack);
        f.terms.push_back({"allocator_slack", slack,
                           "5% of activations and cache + the largest transient block (caching allocator)"});
        f.fixedOverheadBytes = rt.fixedOverheadBytes.value_or(kTransformersFixed);
        f.terms.push_back({"cuda_context", f.fixedOverheadBytes, "PyTorch CUDA context and kernel images"});
        break;
    }
    }
    if (n > 1 && !rt.fixedOverheadBytes && rt.runtime != Runtime::Vllm) {
        f.fixedOverheadBytes += kNcclPerGpu;
        f.terms.push_back({"nccl", kNcclPerGpu, "communication buffers per GPU"});
    }
    return f;
}

uint64_t maxContextForBudget(const ModelLayout& model, const WeightSummary& weights, FootprintRequest request,
                             uint64_t budgetBytes)
{
    auto fits = [&](uint64_t ctx) {
        request.context = ctx;
        try {
            return estimateFootprint(model, weights, request).totalBytes() <= budgetBytes;
        } catch (const Error& e) {
            if (e.code() == ErrorCode::Overflow)
                return false;
            throw;
        }
    };
    if (!fits(0))
        return 0;
    uint64_t lo = 0, hi = 1ull << 40;
    if (fits(hi))
        return hi;
    while (hi - lo > 1) { // invariant: fits(lo), !fits(hi)
        const uint64_t mid = lo + (hi - lo) / 2;
        (fits(mid) ? lo : hi) = mid;
    }
    return lo;
}

GpuFit fitOnGpu(const ModelLayout& model, const WeightSummary& weights, const FootprintRequest& requested,
                const GpuSpec& gpu)
{
    GpuFit r;
    const FootprintRequest request = requestForGpu(requested, gpu);
    r.gpuBytes = gpuBudgetBytes(gpu, request.runtime);
    r.footprint = estimateFootprint(model, weights, request);
    const uint64_t total = r.footprint.totalBytes();
    // What sits outside the budget must fit beside it (vLLM's CUDA context, at a utilisation close to 1).
    const uint64_t beside = besideBudgetBytes(gpu, request.runtime);
    const bool outsideFits = r.footprint.outsideBudgetBytes <= beside;
    r.fits = total <= r.gpuBytes && outsideFits;
    r.headroomBytes = static_cast<int64_t>(r.gpuBytes) - static_cast<int64_t>(total);
    r.maxContextByMemory = outsideFits ? maxContextForBudget(model, weights, request, r.gpuBytes) : 0;
    r.maxContext = r.maxContextByMemory;
    if (model.config.contextLength > 0)
        r.maxContext = std::min<uint64_t>(r.maxContext, model.config.contextLength);

    for (uint32_t n = 1; n <= 64 && r.gpusNeeded == 0; ++n) {
        if (request.runtime.runtime == Runtime::Vllm && model.config.heads > 0 && model.config.heads % n != 0)
            continue;
        FootprintRequest tp = request;
        tp.gpuCount = n;
        try {
            const Footprint f = estimateFootprint(model, weights, tp);
            if (f.totalBytes() <= r.gpuBytes && f.outsideBudgetBytes <= beside)
                r.gpusNeeded = n;
        } catch (const Error& e) {
            if (e.code() != ErrorCode::Overflow)
                throw;
        }
    }

    const uint32_t n = std::max<uint32_t>(1, request.gpuCount);
    const long double perStep =
        static_cast<long double>(weights.readPerTokenBytes) +
        (hasAttentionConfig(model.config)
             ? static_cast<long double>(kvCacheBytes(
                   model.config, request.context, std::max<uint32_t>(1, request.batch), request.kvType,
                   request.runtime.runtime == Runtime::LlamaCpp ? request.runtime.ubatch : 0,
                   request.runtime.swaFull))
             : 0.0L);
    if (perStep > 0)
        r.maxDecodeTokensPerSecond =
            static_cast<double>(static_cast<long double>(std::max<uint32_t>(1, request.batch)) *
                                gpu.bandwidthGBps * 1e9 * n / perStep);
    return r;
}

} // namespace qs
