#pragma once
// `quantscope-cli plan --gpu NAME`: fit the weights and the KV-cache type to a GPU (core/plan/gpufit.h) for
// a context (--ctx) or the longest context for a quality (--max-error); the alternatives per KV type and,
// when nothing fits, the smallest change go into the "budget" JSON object.
#include <QJsonObject>
#include <cstdint>

class QCommandLineParser;

namespace qs {
class Plan;
struct BudgetProblem;
struct BudgetSolution;
struct ModelLayout;
} // namespace qs

namespace cli {

void addPlanGpuFitOptions(QCommandLineParser& parser);
// Solves; on success `solution` is the chosen plan (for `problem`) and `budget` the weight bytes it was
// solved for. Returns 0 (also when nothing fits: then solution.feasible is false and the reason and the
// suggestions were printed, or put into `json`), or an exit code after fail().
int fitPlanToGpu(const QCommandLineParser& parser, const qs::ModelLayout& layout, const qs::Plan& plan,
                 const qs::BudgetProblem& problem, QJsonObject& json, qs::BudgetSolution& solution,
                 uint64_t& budget);

} // namespace cli
