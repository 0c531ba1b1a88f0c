#pragma once
// Fit to budget: choose one format per tensor, among the plan's tiers, to minimise the total error while
// the weights fit in a byte budget. This is a multiple-choice knapsack. We solve it with branch and bound
// whose bounds come from the LP relaxation over each tensor's lower convex hull of (bytes, error) options
// (the classical MCKP relaxation, solved greedily by decreasing error-per-byte); the first incumbent is
// the LP's integral part improved by local search (single changes, then one-down-one-up exchanges).
// Reduced-cost fixing at the LP's multiplier then drops every option that cannot be in a better plan, and
// identical items are enumerated once per multiset of choices. When the node limit stops the search, an
// exact dynamic programme over the remaining items' bytes finishes it if small enough (SolveOptions); else
// the result carries a proven lower bound and its gap.
//
// The same hull gives the trade-off curve: at each breakpoint the LP solution is integral, so every point
// is a plan that is optimal for its own size; users pick a size on it and see the error it costs.
//
// Everything here is pure and single-threaded. solveBudget takes up to a few hundred milliseconds on large
// models (docs/plan-schema.md): run it off the UI thread; it polls JobControl::cancelled() and throws
// qs::CancelledError when cancelled (the node limit, not a cancel, is what ends a solve "not optimal").

#include "core/plan/plan.h"
#include "core/quant/sensitivity.h"

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

namespace qs {

class JobControl;
class QuantFormat;

struct BudgetOption {
    std::string format;
    uint64_t bytes = 0;
    double error = 0;
    bool quantized = false; // not a float format (BF16, F16, F32)
};

struct BudgetProblem {
    std::vector<std::string> tensors;               // one item per tensor (or per tied group: its label)
    std::vector<std::vector<BudgetOption>> options; // at least one option per item
    uint64_t fixedBytes = 0;                        // bytes outside the choice (norms, biases, ...)
    // Tensors each item assigns; empty means the item is the single tensor `tensors[i]`.
    std::vector<std::vector<std::string>> members;
    // The target's export needs at least one quantized tensor (targetNeedsQuantizedTensor): solveBudget
    // never returns an all-float plan when the problem has a quantized option.
    bool needsQuantized = false;
};

// tensor -> format -> error, e.g. the sensitivity matrix (weighted when an importance file is loaded).
using ErrorTable = std::map<std::string, std::map<std::string, double>>;

// The sensitivity matrix as an error table. Each cell's error is the tensor's total squared error,
// mse x rows x cols (weighted_mse instead when `preferWeighted` and the cell has it), so that errors add up
// across tensors. Failed cells are skipped.
ErrorTable errorTableFromSensitivity(const std::vector<SensitivityResult>& results,
                                     bool preferWeighted = true);
// Reads the JSON of `quantscope-cli sensitivity --json` the same way, or ΔKL from `--measure kl` (see
// core/plan/sensitivityfile.h, which also tells which). Throws qs::FormatError on malformed input.
ErrorTable loadErrorTable(const std::filesystem::path& path, bool preferWeighted = true);
ErrorTable errorTableFromJson(const std::string& json, bool preferWeighted = true,
                              const std::string& fileName = {});

// Total predicted error of a plan (the footprint panel's "predicted error"): the table's error for every
// assigned (tensor, format) pair, the proxy where the table has no entry for the tensor. Tensors whose
// format the table lacks while having other formats are counted in `missing`.
struct PlanErrorSummary {
    double error = 0;
    size_t measured = 0; // tensors whose error came from the table
    size_t proxied = 0;  // tensors without table entries (proxy used)
    size_t missing = 0;  // tensors whose assigned format the table lacks
};
PlanErrorSummary planError(const Plan& plan, const ModelLayout& model, const ErrorTable& errors);

// Without measurements, a size-based proxy: elements * 4^(-bits per weight), the mean squared error of a
// uniform quantizer relative to the weights' variance, summed over the tensor.
double proxyError(const TensorInfo& tensor, const QuantFormat& format);

// One item per plannable tensor, with the plan's tiers that can store its shape as options. With an error
// table, options missing from it are dropped (unless the tensor has no entry at all, then the proxy is used
// for all of its options, so that scales never mix within a tensor).
struct BudgetOptions {
    // One item per fused group (q/k/v, gate/up, a layer's experts; see fusedGroups): the group takes one
    // format, available when every member can store it, with the members' bytes and errors summed. What
    // vLLM-style exports need.
    bool tieFusedGroups = false;
    // Options are the formats the tensors are stored in for this target (storableFormat): tiers the target
    // cannot express are dropped, a tier that cannot hold a shape becomes its substitute (llama.cpp's
    // fallback), so that every solution is a plan the target's export and quantize accept.
    ExportTarget target = ExportTarget::PlanJson;
};
BudgetProblem makeBudgetProblem(const Plan& plan, const ModelLayout& model, const ErrorTable& errors,
                                const BudgetOptions& options = {});

struct BudgetSolution {
    bool feasible = false;
    std::vector<size_t> choice; // option index per item
    uint64_t bytes = 0;         // fixedBytes + chosen bytes (when infeasible: the smallest possible total)
    double error = 0;
    double lowerBound = 0; // proven: no plan within the budget has a smaller error
    double gap = 0;        // error - lowerBound (0 when proven optimal)
    bool optimal = false;
    uint64_t nodes = 0; // branch-and-bound nodes explored
};

struct SolveOptions {
    uint64_t maxNodes = 200000;
    // When the node limit stops the search, the open items (after reduced-cost fixing) are solved exactly
    // by dynamic programming over their bytes, in units of the bytes' greatest common divisor, if the table
    // has at most this many (item, state) cells (1-4 bits each: 256 Mi cells take 32-128 MiB). 0: never.
    uint64_t maxDpCells = 256ull << 20;
};
BudgetSolution solveBudget(const BudgetProblem& problem, uint64_t budgetBytes, JobControl* job = nullptr,
                           const SolveOptions& options = {});
// Tries every combination (with at least one quantized option when the problem needsQuantized); for tests
// on small instances (throws qs::Error when above 2^22 combinations).
BudgetSolution bruteForceBudget(const BudgetProblem& problem, uint64_t budgetBytes);

struct TradeoffPoint {
    uint64_t bytes = 0;
    double error = 0;
};
// The convex frontier from the smallest plan to the most precise one, bytes increasing, error decreasing.
std::vector<TradeoffPoint> tradeoffCurve(const BudgetProblem& problem);

// Writes the chosen formats into the plan.
Plan applySolution(Plan plan, const BudgetProblem& problem, const BudgetSolution& solution);

} // namespace qs
