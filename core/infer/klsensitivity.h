#pragma once
// Measured end-to-end sensitivity: for every unit of a model (a tensor, or a layer group) and every candidate
// format, how much the model's output distribution moves when that unit alone is quantized — the mean over
// scored tokens of KL(P_original || P_quantized) — and the unit's exact size in that format.
//
// How: the calibration text is cut into evaluate()'s token windows (llama-perplexity's chunks: ctx tokens,
// BOS first, the second half of each chunk scored, positions ctx/2 .. ctx-2), so that a measured ΔKL and the
// KL divergence `eval` reports for a plan are the same statistic over the same kind of positions. The
// unquantized hidden states at every layer input (and after the last layer) are computed once through the
// layer-wise forward path (Transformer::embed / runLayers / logits) with the original's log-probabilities at
// the scored positions. A measurement then replaces the unit's tensors by their round trip through the format
// (QuantFormat::roundTrip, exactly what a plan's fake quantization does: Transformer::setWeightOverride), runs
// from the unit's layer to the end from the cached hidden states (the embedding from the lookup on, the output
// head from the final hidden states), compares the log-probabilities with the cached ones, and removes the
// override. Memory: (layers + 1) x hidden x tokens floats of hidden states plus scored positions x vocab
// floats of log-probabilities, refused or reduced (fewer chunks, said in `notes`) above maxMemoryBytes.
//
// Cache: with useCache, results are kept in the analysis cache directory (cacheDirectory(), beside the
// weight-error sensitivity cache), one file per model and calibration input named by the model's file stem
// and a hash of the token windows; the file's key holds every model file's path, size and modification time
// and the windows' hash; each cell is keyed by unit, its tensors and the format. A cell found there is
// returned (fromCache) without running the model; a stale or malformed file is ignored and rewritten.
//
// The results feed the budget fit like the weight-error matrix: errorTableFromKl() (ΔKL per tensor and
// format), or the JSON of klSensitivityJson() read by errorTableFromJson() / `plan --sensitivity`. ΔKL of
// different tensors is assumed to add up: the fit minimises the summed ΔKL, and that sum is the plan's
// predicted KL divergence (measured afterwards by evaluate()).

#include "core/quant/sensitivity.h"
#include "core/util/job.h"

#include <QJsonObject>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qs {

class Model;

// As in core/plan/budget.h (tensor -> format -> error); this header does not include the plan headers so
// that it can meet core/model/modelidentity.h.
using ErrorTable = std::map<std::string, std::map<std::string, double>>;

enum class KlGranularity : uint8_t {
    Tensor, // every matrix alone (what the per-tensor budget fit needs)
    Group   // per block: attention (q/k/v/o) and MLP (gate/up/down); the embedding and the head alone
};
const char* klGranularityName(KlGranularity g); // "tensor", "group"

struct KlSensitivityOptions {
    std::vector<std::string> formats; // empty: defaultSensitivityFormats()
    KlGranularity granularity = KlGranularity::Tensor;
    uint32_t ctx = 0;                // 0: min(512, the model's maximum), as evaluate()
    uint32_t firstChunk = 0;         // windows before this one are skipped (keep them for a separate check)
    uint32_t maxChunks = 0;          // 0: as many as maxTokens allows
    uint64_t maxTokens = 4096;       // upper bound of the tokens run (whole chunks; at least one chunk)
    uint64_t maxMemoryBytes = 1ull << 30; // hidden states + log-probabilities (see above)
    unsigned threads = 0;            // resolveThreads() policy
    bool useCache = false;
    std::filesystem::path cacheDir; // empty: cacheDirectory()
};

struct KlSensitivityParams {
    std::shared_ptr<const Model> model;
    std::string text;               // UTF-8; ignored when tokens is not empty
    std::filesystem::path textFile; // read when text and tokens are empty (at most 1 GiB)
    std::vector<int32_t> tokens;    // already tokenized text, used as given
    KlSensitivityOptions options;
};

struct KlSensitivityCell {
    std::string unit;                 // the tensor's name, or the group's label ("blk.0.attn", "blk.0.ffn")
    std::vector<std::string> tensors; // the tensors quantized together
    std::string format;               // canonical format name
    uint64_t elements = 0;            // weights of the unit
    uint64_t bytes = 0;               // exact stored size of the unit in the format (0 when unsupported)
    double bitsPerWeight = 0;
    double deltaKl = 0;  // mean KL(P_original || P_quantized) over the scored positions, nats
    double maxKl = 0;    // largest KL of one position
    double sameTop = 0;  // share of positions whose most likely token stays the same
    std::string error;   // non-empty when the format cannot store a tensor of the unit
    bool fromCache = false;
    bool ok() const { return error.empty(); }
};

struct KlSensitivityResult {
    KlGranularity granularity = KlGranularity::Tensor;
    std::vector<std::string> formats;
    uint32_t ctx = 0;
    uint32_t firstChunk = 0;
    uint32_t chunks = 0;       // windows used
    uint32_t chunksInText = 0; // whole windows the text has
    size_t tokens = 0;         // tokens run (chunks x ctx)
    size_t positions = 0;      // scored positions
    std::string windowsHash;   // hash of the token windows (the cache key's calibration part)
    uint64_t memoryBytes = 0;  // hidden states + log-probabilities kept
    std::vector<KlSensitivityCell> cells; // units in model order, then the format list
    size_t cachedCells = 0;
    std::vector<std::string> notes; // e.g. fewer chunks than asked for because of the memory bound
    double seconds = 0;
};

// The units of a model under a granularity: (label, tensors), embedding first, the head last.
std::vector<std::pair<std::string, std::vector<std::string>>> klUnits(const Model& model, KlGranularity granularity);

// The cache file of this model and calibration windows (empty when no cache directory is known).
std::filesystem::path klSensitivityCacheFile(const Model& model, const std::string& windowsHash,
                                             const std::filesystem::path& cacheDir = {});

// Every model file's path, size and modification time (empty when one cannot be stat'ed: nothing cached).
std::string klModelKey(const Model& model);

using KlSensitivityCallback = std::function<void(const KlSensitivityCell&)>;

// Measures every unit x format. Throws qs::Error(BadValue) for an unknown format, a text too short for one
// window, or a single window above the memory bound; qs::Error(Unsupported) for an architecture the
// forward pass does not run; qs::CancelledError when cancelled (cells measured so far are cached).
KlSensitivityResult measureKlSensitivity(const KlSensitivityParams& params, const KlSensitivityCallback& onCell = {},
                                         JobControl* job = nullptr);

// ΔKL per tensor and format, for makeBudgetProblem. Throws qs::Error(BadValue) for group results (a
// group's ΔKL says nothing about a mix of formats inside it).
ErrorTable errorTableFromKl(const KlSensitivityResult& result);

// The JSON of `quantscope-cli sensitivity --measure kl --json` (read back by errorTableFromJson): "measure":
// "kl", the windows, and "results": [{"tensor", "format", "rows", "cols", "bytes", "bits_per_weight",
// "delta_kl", "max_kl", "same_top", "cached"}] for tensor units ("unit" and "tensors" for groups).
QJsonObject klSensitivityJson(const KlSensitivityResult& result, const Model& model);

// The KL results as weight-error-style cells (what the GUI's sensitivity views read): one per tensor unit
// and format, metrics.count = elements and metrics.mse = ΔKL / elements, so that errorTableFromSensitivity
// gives back ΔKL; deltaKl set; metrics.sqnrDb = the KL score klScoreDb(ΔKL), so the views' colour scale,
// bars and curves (higher is better, in dB) show it unchanged; the other metrics are NaN (not measured).
// Group results are refused as above.
std::vector<SensitivityResult> sensitivityCellsFromKl(const KlSensitivityResult& result, const Model& model);
// One cell (nullopt for a layer-group unit or a tensor the model lacks), as it streams from the job.
std::optional<SensitivityResult> sensitivityCellFromKl(const KlSensitivityCell& cell, const Model& model);
// −10·log10(ΔKL): the measured ΔKL on the decibel scale SQNR uses (+∞ when the output did not move).
double klScoreDb(double deltaKl);

class KlSensitivityJob final : public BasicJob<KlSensitivityParams, KlSensitivityResult> {
public:
    explicit KlSensitivityJob(KlSensitivityParams params);
    ResultQueue<KlSensitivityCell>& finishedCells() { return m_finished; }

protected:
    void execute(JobControl& control) override;

private:
    ResultQueue<KlSensitivityCell> m_finished;
};

} // namespace qs
