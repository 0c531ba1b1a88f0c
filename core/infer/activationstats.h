#pragma once
// Activation statistics of a calibration run: for every linear layer's input, per input channel the mean
// square (llama.cpp's importance), the mean absolute value (what AWQ scales by) and the largest absolute
// value (the outlier channels), and optionally the mean outer product XᵀX/n (GPTQ's Hessian is 2·XᵀX/n).
// Collected by calibrate() (core/infer/evaluate.h) and kept in an HDF5 file with the schema below, which
// docs/inference.md documents for other tools.
//
// HDF5 schema, version 1 (every dataset little-endian, contiguous):
//   /quantscope_activation_stats   int32 [1]        the schema version (1)
//   /meta/ctx, /meta/chunks, /meta/tokens  float64 [1]
//   /inputs/<T1>+<T2>+…/            one group per distinct input; its name lists the weight tensors that
//                                   read this input ('+'-joined model tensor names, e.g. q, k and v)
//       count     float64 [1]       tokens seen
//       mean_sq   float32 [cols]    mean over tokens of x_j²
//       mean_abs  float32 [cols]    mean over tokens of |x_j|
//       max_abs   float32 [cols]    max over tokens of |x_j|
//       xtx       float32 [cols, cols]  (optional) mean over tokens of x xᵀ
//   Root attributes "model" and "dataset" (strings) are for people reading the file; readers ignore them.
//
// Reading treats the file as hostile: it is parsed by the sandboxed HDF5 probe (core/io/hdf5.h) and every
// dataset's presence, type, shape and value is checked; errors are qs::FormatError naming the dataset.

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qs {

class ImportanceMatrix;
class JobControl;
struct ImportanceEntry;

// The statistics of one input, shared by the tensors that read it.
struct InputActivations {
    std::vector<std::string> tensors; // the weights that read this input, in model order
    double count = 0;                 // tokens
    std::vector<float> meanSq, meanAbs, maxAbs;
    std::vector<float> xtx; // cols x cols, mean x xᵀ (row-major, symmetric); empty when not collected
    size_t columns() const { return meanSq.size(); }
};

struct ActivationStats {
    uint32_t ctx = 0;
    uint32_t chunks = 0;
    uint64_t tokens = 0;
    std::vector<InputActivations> inputs;

    // The input a weight tensor reads (by the name as stored here), or nullptr.
    const InputActivations* find(std::string_view tensor) const;
    bool hasHessians() const;
    // The importance matrix the mean squares make (llama.cpp's, one entry per tensor).
    ImportanceMatrix importance(const std::string& dataset) const;
    // Its entries: one per tensor, sorted by name, counts {tokens}.
    std::vector<ImportanceEntry> importanceEntries() const;
};

// Accumulates statistics input by input as calibration runs. Call beginPass() before every forward pass
// (a chunk, or a chunk through one layer); within a pass an input is counted once however many weights
// read it (q, k and v), and each reader is recorded. Single-threaded.
class ActivationAccumulator {
public:
    // threads: workers for the XᵀX updates (0: resolveThreads()).
    explicit ActivationAccumulator(bool hessians, unsigned threads = 0) : m_hessians(hessians), m_threads(threads) {}
    void beginPass();
    // x: cols x tokens (column-major, as LinearInput gives it); key: the input's identity, e.g.
    // "L3/attn_in" (take() selects inputs by a key prefix).
    void add(const std::string& key, const std::string& tensor, const float* x, int64_t cols, int64_t tokens);
    // Finishes the inputs whose key starts with `prefix` (e.g. one layer's) and moves them out, in the
    // order they were first seen.
    std::vector<InputActivations> take(std::string_view prefix = {});
    bool empty() const { return m_open.empty(); }

private:
    struct Open;
    bool m_hessians;
    unsigned m_threads;
    uint64_t m_pass = 0;
    std::vector<std::pair<std::string, std::shared_ptr<Open>>> m_open;
};

// Writes the file incrementally (one layer's inputs at a time, so that Hessians never all sit in memory) to
// a temporary name beside `path`; commit() publishes it atomically (fsync, rename). Destroying an
// uncommitted writer removes the temporary file. Throws qs::Error(Io) on any write failure.
class ActivationStatsWriter {
public:
    ActivationStatsWriter(const std::filesystem::path& path, const std::string& model, const std::string& dataset);
    ~ActivationStatsWriter();
    ActivationStatsWriter(const ActivationStatsWriter&) = delete;
    ActivationStatsWriter& operator=(const ActivationStatsWriter&) = delete;

    void write(const InputActivations& input);
    void commit(uint32_t ctx, uint32_t chunks, uint64_t tokens);

private:
    struct Impl;
    std::unique_ptr<Impl> m;
};

// Whole-file write of statistics held in memory (tests, small models).
void writeActivationStats(const ActivationStats& stats, const std::filesystem::path& path,
                          const std::string& model = {}, const std::string& dataset = {});

// Reads a file written above. withHessians false skips the xtx datasets (the channel view needs only the
// vectors). Throws qs::FormatError naming the dataset, qs::Error for I/O, qs::CancelledError.
ActivationStats loadActivationStats(const std::filesystem::path& path, bool withHessians = true,
                                    JobControl* job = nullptr);

// The same from a model the HDF5 loader built from such a file (`file` names it in errors); what
// loadActivationStats does after loadHdf5, and what the probe-protocol fuzzer feeds.
class Model;
ActivationStats activationStatsFromModel(const Model& model, const std::string& file, bool withHessians = true,
                                         JobControl* job = nullptr);

// Limits for reading: inputs per file and columns per input.
constexpr size_t kMaxActivationInputs = 1u << 20;
constexpr uint64_t kMaxActivationColumns = 1u << 20;

} // namespace qs
