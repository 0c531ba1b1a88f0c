#pragma once
// Evaluation of a plan by what it does to the model's output: perplexity of the original and of the
// fake-quantized model over a text, and the KL divergence of the quantized model's next-token distribution
// from the original's — the statistics `llama-perplexity --kl-divergence` reports, computed the same way so
// that numbers compare across tools.
//
// Chunking (llama.cpp tools/perplexity): the whole text is tokenized once (BOS first when the vocabulary
// adds it); chunk i is tokens [i*ctx, (i+1)*ctx) with its first token replaced by BOS when the vocabulary
// adds BOS; each chunk runs from an empty KV cache; only the second half is scored: the logits at positions
// ctx/2 .. ctx-2 predict tokens ctx/2+1 .. ctx-1 (ctx - 1 - ctx/2 scores per chunk). At least 2*ctx tokens
// are needed, as llama-perplexity requires. Median and percentiles of the per-position KL divergence as
// llama.cpp computes them (the median averages the two middle values; p99 interpolates linearly).
//
// The original's next-token distributions are computed once per (text, ctx, chunks) and kept in an
// EvalBaseline that a later evaluation of another plan reuses. A baseline keeps every log-probability when
// positions x vocab x 8 bytes fit in EvalParams::baselineBytes (exact KL); otherwise the top k of each
// position (k as large as the budget allows, at least 64) and the KL divergence is computed over the top k
// plus one "rest of the vocabulary" bucket: the KL divergence of the two distributions coarsened that way,
// a lower bound of the exact value (log-sum inequality) that misses only how the tail mass is spread.

#include "core/infer/activationstats.h"
#include "core/plan/plan.h"
#include "core/quant/imatrix.h"
#include "core/util/job.h"

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qs {

class Model;

// The original model's scored next-token distributions over one tokenized text.
struct EvalBaseline {
    const Model* model = nullptr; // identity only (the baseline is reused for this model alone)
    std::vector<int32_t> tokens;  // the whole tokenized text
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    uint32_t vocab = 0;
    uint32_t topK = 0;           // entries kept per position; == vocab when exact
    bool llamaCppActivations = false; // computed with llama.cpp's input rounding (ForwardOptions)
    std::vector<double> nll;     // per scored position: -log p(next token)
    std::vector<int32_t> top;    // per scored position: the most likely token (first on ties)
    std::vector<int32_t> ids;    // per scored position, topK ids (empty when exact: ids are 0..vocab-1)
    std::vector<float> logProbs; // per scored position, topK log-probabilities
    bool exact() const { return topK == vocab; }
    size_t positions() const { return nll.size(); }
};

struct EvalParams {
    std::shared_ptr<const Model> model;
    std::optional<Plan> plan;       // without a plan only the original's perplexity is computed
    // A quantized file of the same model (the same vocabulary), e.g. a quantize job's output: evaluated
    // against the original in place of the plan's fake quantization (plan is then ignored).
    std::shared_ptr<const Model> quantizedModel;
    std::string text;               // UTF-8; ignored when tokens is not empty
    std::filesystem::path textFile; // read by the job when text and tokens are empty (at most 1 GiB)
    std::vector<int32_t> tokens;    // already tokenized text (a token-id file), used as given
    uint32_t ctx = 0;               // 0: min(512, the model's maximum)
    uint32_t maxChunks = 0;         // 0: every whole chunk of the text
    unsigned threads = 0;           // resolveThreads() policy
    uint64_t baselineBytes = 512ull << 20;
    // Round every matmul's input as llama.cpp's CPU backend does (ForwardOptions::llamaCppActivations), for
    // both models, so that the numbers compare with llama-perplexity's.
    bool llamaCppActivations = false;
    // The original's distributions from an earlier run; used when it matches (model, tokens, ctx, chunks).
    std::shared_ptr<const EvalBaseline> baseline;
};

struct EvalChunk {
    double perplexity = 0;          // the original over this chunk's scored positions
    double perplexityQuantized = 0; // with a plan
    double kldMean = 0;
    double kldMax = 0;
    double sameTop = 0; // share of positions whose most likely token is the same
};

struct EvalResult {
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    size_t tokens = 0;    // tokens of the text (BOS included)
    size_t positions = 0; // scored positions
    bool addBos = false;
    double perplexity = 0;
    bool quantized = false; // a plan was given: the fields below are set
    double perplexityQuantized = 0;
    double kldMean = 0, kldMedian = 0, kldP99 = 0, kldMax = 0;
    double sameTop = 0;
    bool kldExact = true; // false when the baseline kept the top k only (see the file comment)
    uint32_t baselineTopK = 0;
    bool baselineReused = false;
    std::vector<EvalChunk> perChunk;
    std::vector<float> kld; // per scored position, in text order
    std::shared_ptr<const EvalBaseline> baseline;
    double seconds = 0;
};

// The tokens an evaluation scores for a text: the tokenizer's encoding with BOS first where the vocabulary
// adds it; text that spells a special token ("<|end_of_text|>") stays text, as in llama-perplexity. Throws
// qs::Error(BadValue) for text that is not UTF-8 (naming the offset) and for a model without a vocabulary.
std::vector<int32_t> evaluationTokens(const Model& model, const std::string& text, bool* addBos = nullptr);

// The token windows evaluate() and calibrate() run (see the file comment): the text tokenized once (BOS
// first where the vocabulary adds it), then chunk i = tokens [i*ctx, (i+1)*ctx) with its first token replaced
// by BOS. ctx 0: min(512, the model's maximum). Throws qs::Error(BadValue) as evaluate() does, and when the
// text has fewer than minChunks whole chunks.
struct TokenWindows {
    std::vector<int32_t> tokens; // the whole tokenized text
    std::optional<int32_t> bos;
    uint32_t ctx = 0;
    uint32_t chunks = 0; // whole chunks used (at most maxChunks when given)
    std::vector<int32_t> chunk(uint32_t i) const;
};
TokenWindows tokenWindows(const Model& model, uint32_t ctx, uint32_t maxChunks, const std::string& text,
                          const std::filesystem::path& textFile, const std::vector<int32_t>& tokens,
                          size_t minChunks = 1, JobControl* job = nullptr);

// Runs the evaluation. Throws qs::Error(BadValue) for a context longer than the model's maximum (naming
// it), a context below 4, a text too short for two chunks (naming both numbers), an unknown or
// inapplicable planned format; qs::Error(Unsupported) for an architecture the forward pass does not run.
// Cancel is checked before every linear layer.
EvalResult evaluate(const EvalParams& params, JobControl* job = nullptr);

// llama.cpp's percentile of sorted values (linear interpolation between neighbours).
double sortedPercentile(const std::vector<float>& sorted, double fraction);
// llama.cpp's median of sorted values (mean of the two middle values for an even count).
double sortedMedian(const std::vector<float>& sorted);

class EvalJob final : public BasicJob<EvalParams, EvalResult> {
public:
    explicit EvalJob(EvalParams params);

protected:
    void execute(JobControl& control) override;
};

// Calibration: llama.cpp's importance matrix (what llama-imatrix collects) from a text — for every linear
// layer of the blocks, the mean over tokens of each input feature's square, over every position of the same
// chunks as above (BOS in front). The output head is left out, as llama-imatrix does by default. The same
// pass collects the activation statistics of core/infer/activationstats.h (mean |x|, max |x| per input
// channel, and with `hessians` the mean outer product XᵀX/n per distinct input).
//
// Memory: without Hessians the chunks run one at a time through the whole model. With Hessians every chunk's
// hidden states are kept (chunks x ctx x hidden floats) and the model runs layer by layer, so that only one
// layer's XᵀX matrices are held at a time; with statsOut each layer's statistics are written as soon as the
// layer is done and its Hessians freed (the result then keeps the vectors only).
struct CalibrateParams {
    std::shared_ptr<const Model> model;
    std::string text;
    std::filesystem::path textFile; // read by the job when text and tokens are empty
    std::vector<int32_t> tokens;
    uint32_t ctx = 0;       // 0: min(512, the model's maximum)
    uint32_t maxChunks = 0; // 0: every whole chunk (at least one is needed)
    unsigned threads = 0;
    // When set, the job also writes the importance file here (.dat: the legacy layout, else GGUF), naming
    // `dataset` in it (default: the text file's name).
    std::filesystem::path imatrixOut;
    std::string dataset;
    bool hessians = false;          // collect XᵀX/n per distinct input (GPTQ's Hessian / 2)
    std::filesystem::path statsOut; // when set, the activation statistics are written here (HDF5)
};
struct CalibrateResult {
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    size_t tokens = 0;
    std::vector<ImportanceEntry> entries; // values: mean squared input; counts: {tokens seen}
    ActivationStats activations;          // per distinct input (xtx kept only without statsOut)
};
CalibrateResult calibrate(const CalibrateParams& params, JobControl* job = nullptr);
// Writes llama.cpp's legacy .dat layout (read by llama-quantize --imatrix and ImportanceMatrix::load):
// ncall = chunks, values = mean square x ncall, then the chunk count and the dataset name. Atomic.
void writeImportanceLegacy(const CalibrateResult& result, const std::filesystem::path& path,
                           const std::string& dataset);

// Writes llama.cpp's GGUF imatrix layout (llama-imatrix's current output): per entry <name>.in_sum2 (F32,
// ne = [columns, 1], the sum of squares) and <name>.counts (F32, ne = [1, 1], the tokens), general.type
// "imatrix", imatrix.datasets, imatrix.chunk_count and imatrix.chunk_size. Atomic.
void writeImportanceGguf(const CalibrateResult& result, const std::filesystem::path& path,
                         const std::string& dataset);

// The calibration's importance as the matrix sensitivity and quantize read (what loading the written file
// gives).
ImportanceMatrix importanceMatrixOf(const CalibrateResult& result, const std::string& dataset);
// The calibration sequences of a text as calibrate() runs them: chunks of ctx tokens (0: min(512, the
// model's maximum)), BOS first where the vocabulary adds it, at most maxChunks (0: all), at least one.
// text, else textFile, else tokens as in CalibrateParams. *ctxOut receives the context used.
std::vector<std::vector<int32_t>> calibrationChunks(const Model& model, uint32_t ctx, uint32_t maxChunks,
                                                    const std::string& text,
                                                    const std::filesystem::path& textFile,
                                                    const std::vector<int32_t>& tokens, uint32_t* ctxOut = nullptr,
                                                    JobControl* job = nullptr);

class CalibrateJob final : public BasicJob<CalibrateParams, CalibrateResult> {
public:
    explicit CalibrateJob(CalibrateParams params);

protected:
    void execute(JobControl& control) override;
};

} // namespace qs
