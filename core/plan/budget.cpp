#include "core/plan/budget.h"
#include "core/plan/sensitivityfile.h"

#include "core/util/fileio.h"

#include "core/quant/format.h"
#include "core/util/error.h"
#include "core/util/job.h"

#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>

namespace qs {

double proxyError(const TensorInfo& tensor, const QuantFormat& format)
{
    const uint64_t n = std::max<uint64_t>(1, tensor.elements());
    auto b = format.storedBytes(tensor.rows(), tensor.columns());
    const double bits = b ? 8.0 * static_cast<double>(*b) / static_cast<double>(n) : 0.0;
    return static_cast<double>(n) * std::pow(4.0, -bits);
}

ErrorTable errorTableFromSensitivity(const std::vector<SensitivityResult>& results, bool preferWeighted)
{
    ErrorTable t;
    for (const auto& r : results) {
        if (!r.ok())
            continue;
        const double n = static_cast<double>(r.rows) * static_cast<double>(r.cols);
        const double mse = preferWeighted && r.metrics.weightedMse ? *r.metrics.weightedMse : r.metrics.mse;
        if (std::isfinite(mse))
            t[r.tensor][r.format] = mse * n;
    }
    return t;
}

ErrorTable errorTableFromJson(const std::string& json, bool preferWeighted, const std::string& fileName)
{
    return sensitivityTableFromJson(json, preferWeighted, fileName).errors;
}

ErrorTable loadErrorTable(const std::filesystem::path& path, bool preferWeighted)
{
    return loadSensitivityTable(path, preferWeighted).errors;
}

PlanErrorSummary planError(const Plan& plan, const ModelLayout& model, const ErrorTable& errors)
{
    PlanErrorSummary s;
    for (const auto& [name, format] : plan.assignments()) {
        const TensorInfo* t = model.find(name);
        auto f = findFormat(format);
        if (!t || !f)
            continue;
        auto row = errors.find(name);
        if (row == errors.end()) {
            s.error += proxyError(*t, *f);
            ++s.proxied;
            continue;
        }
        auto cell = row->second.find(f->name());
        if (cell == row->second.end())
            cell = row->second.find(format);
        if (cell == row->second.end()) {
            ++s.missing;
            continue;
        }
        s.error += cell->second;
        ++s.measured;
    }
    return s;
}

namespace {

// The options of one tensor: the tiers that can store it, with their exact bytes and error; empty when none.
std::vector<BudgetOption> tensorOptions(const Plan& plan, const TensorInfo& t, const ErrorTable& errors,
                                        ExportTarget target)
{
    auto measured = errors.find(t.name);
    std::vector<BudgetOption> opts;
    std::set<std::string> seen;
    for (const auto& requested : plan.tiers()) {
        const StorableFormat stored = storableFormat(requested, t, target);
        if (stored.refused() || !seen.insert(stored.format).second)
            continue;
        const std::string& tier = stored.format;
        auto f = findFormat(tier);
        if (!f || !f->supports(t.rows(), t.columns()))
            continue;
        auto bytes = f->storedBytes(t.rows(), t.columns());
        if (!bytes)
            continue;
        double err;
        if (measured != errors.end()) {
            auto e = measured->second.find(f->name());
            if (e == measured->second.end())
                e = measured->second.find(tier);
            if (e == measured->second.end())
                continue;
            err = e->second;
        } else {
            err = proxyError(t, *f);
        }
        opts.push_back({f->name(), *bytes, err});
    }
    return opts;
}

} // namespace

BudgetProblem makeBudgetProblem(const Plan& plan, const ModelLayout& model, const ErrorTable& errors,
                                const BudgetOptions& options)
{
    BudgetProblem p;
    std::map<std::string, std::string> groupOf; // tensor -> fused group label
    std::map<std::string, std::vector<std::string>> groups;
    if (options.tieFusedGroups) {
        groups = fusedGroups(model);
        for (const auto& g : groups)
            for (const auto& n : g.second)
                groupOf[n] = g.first;
    }
    std::set<std::string> done;
    for (const auto& t : model.tensors) {
        if (!isPlannable(t)) {
            p.fixedBytes += t.bytes;
            continue;
        }
        auto g = groupOf.find(t.name);
        if (g == groupOf.end()) {
            auto opts = tensorOptions(plan, t, errors, options.target);
            if (opts.empty()) { // nothing in the tiers fits this tensor: it keeps its stored type
                p.fixedBytes += t.bytes;
                continue;
            }
            p.tensors.push_back(t.name);
            p.options.push_back(std::move(opts));
            p.members.push_back({t.name});
            continue;
        }
        if (!done.insert(g->second).second)
            continue;
        // A fused group: formats every member can take, bytes and errors summed.
        const auto& names = groups.at(g->second);
        std::map<std::string, BudgetOption> sum;
        std::map<std::string, size_t> count;
        uint64_t stored = 0;
        for (const auto& n : names) {
            const TensorInfo* m = model.find(n);
            stored += m->bytes;
            for (const auto& o : tensorOptions(plan, *m, errors, options.target)) {
                auto& s = sum[o.format];
                s.format = o.format;
                s.bytes += o.bytes;
                s.error += o.error;
                ++count[o.format];
            }
        }
        std::vector<BudgetOption> opts;
        std::set<std::string> added;
        for (const auto& tier : plan.tiers()) { // keep the tier order, then substitutes (fallbacks)
            auto f = findFormat(tier);
            if (f && count[f->name()] == names.size() && added.insert(f->name()).second)
                opts.push_back(sum[f->name()]);
        }
        for (const auto& [fmt, o] : sum)
            if (count[fmt] == names.size() && added.insert(fmt).second)
                opts.push_back(o);
        if (opts.empty()) {
            p.fixedBytes += stored;
            continue;
        }
        p.tensors.push_back(g->second);
        p.options.push_back(std::move(opts));
        p.members.push_back(names);
    }
    return p;
}

namespace {

struct Hull {
    std::vector<size_t> pareto; // option indices, bytes increasing, error strictly decreasing
    std::vector<size_t> hull;   // subset of pareto on the lower convex hull
};

Hull buildHull(const std::vector<BudgetOption>& opts)
{
    std::vector<size_t> idx(opts.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::sort(idx.begin(), idx.end(), [&](size_t a, size_t b) {
        return opts[a].bytes != opts[b].bytes ? opts[a].bytes < opts[b].bytes : opts[a].error < opts[b].error;
    });
    Hull h;
    for (size_t i : idx)
        if (h.pareto.empty() || opts[i].error < opts[h.pareto.back()].error)
            h.pareto.push_back(i);
    for (size_t i : h.pareto) {
        while (h.hull.size() >= 2) {
            const auto& a = opts[h.hull[h.hull.size() - 2]];
            const auto& b = opts[h.hull.back()];
            const auto& c = opts[i];
            // b is above the segment a-c (or on it): drop it.
            const long double cross = (static_cast<long double>(b.bytes) - a.bytes) * (c.error - a.error) -
                                      (static_cast<long double>(c.bytes) - a.bytes) * (b.error - a.error);
            if (cross <= 0)
                h.hull.pop_back();
            else
                break;
        }
        h.hull.push_back(i);
    }
    return h;
}

struct Upgrade {
    size_t item;
    size_t step; // hull[step] -> hull[step + 1]
    uint64_t dBytes;
    double dError; // > 0: error removed
};

class Solver {
public:
    Solver(const BudgetProblem& p, uint64_t budget, JobControl* job, uint64_t maxNodes)
        : m_p(p), m_job(job), m_maxNodes(maxNodes)
    {
        const size_t n = p.options.size();
        for (const auto& o : p.options)
            if (o.empty())
                throw Error(ErrorCode::BadValue, "a budget item has no options");
        m_hulls.reserve(n);
        for (const auto& o : p.options)
            m_hulls.push_back(buildHull(o));
        // Branch on the items whose choice matters most first.
        m_order.resize(n);
        std::iota(m_order.begin(), m_order.end(), 0);
        std::vector<double> range(n);
        for (size_t i = 0; i < n; ++i) {
            const auto& h = m_hulls[i];
            range[i] = p.options[i][h.pareto.front()].error - p.options[i][h.pareto.back()].error;
        }
        std::stable_sort(m_order.begin(), m_order.end(),
                         [&](size_t a, size_t b) { return range[a] > range[b]; });
        m_rank.resize(n);
        for (size_t r = 0; r < n; ++r)
            m_rank[m_order[r]] = r;
        for (size_t i = 0; i < n; ++i) {
            const auto& h = m_hulls[i].hull;
            for (size_t s = 0; s + 1 < h.size(); ++s) {
                const auto& a = p.options[i][h[s]];
                const auto& b = p.options[i][h[s + 1]];
                m_upgrades.push_back({i, s, b.bytes - a.bytes, a.error - b.error});
            }
        }
        // Decreasing error removed per byte; convexity keeps each item's steps in order.
        std::stable_sort(m_upgrades.begin(), m_upgrades.end(), [](const Upgrade& x, const Upgrade& y) {
            return x.dError * static_cast<long double>(y.dBytes) >
                   y.dError * static_cast<long double>(x.dBytes);
        });
        m_budget = budget;
    }

    // LP relaxation of the items with rank >= depth and remaining capacity; +inf when infeasible.
    double lpBound(size_t depth, uint64_t capacity, std::vector<size_t>* integral = nullptr) const
    {
        double err = 0;
        uint64_t used = 0;
        for (size_t r = depth; r < m_order.size(); ++r) {
            const size_t i = m_order[r];
            const auto& o = m_p.options[i][m_hulls[i].hull.front()];
            used += o.bytes;
            err += o.error;
            if (integral)
                (*integral)[i] = m_hulls[i].hull.front();
        }
        if (used > capacity)
            return std::numeric_limits<double>::infinity();
        uint64_t left = capacity - used;
        for (const auto& u : m_upgrades) {
            if (m_rank[u.item] < depth)
                continue;
            if (u.dBytes <= left) {
                left -= u.dBytes;
                err -= u.dError;
                if (integral)
                    (*integral)[u.item] = m_hulls[u.item].hull[u.step + 1];
            } else {
                return err - u.dError * static_cast<double>(left) / static_cast<double>(u.dBytes);
            }
        }
        return err;
    }

    BudgetSolution solve()
    {
        BudgetSolution s;
        const size_t n = m_order.size();
        uint64_t minBytes = m_p.fixedBytes;
        for (size_t i = 0; i < n; ++i)
            minBytes += m_p.options[i][m_hulls[i].pareto.front()].bytes;
        if (minBytes > m_budget) {
            s.bytes = minBytes;
            return s;
        }
        const uint64_t capacity = m_budget - m_p.fixedBytes;
        std::vector<size_t> start(n);
        const double root = lpBound(0, capacity, &start);
        s.lowerBound = root;
        // Incumbent: the LP's integral part, then greedy repair with whatever capacity is left.
        m_best = start;
        improve(m_best, capacity);
        m_bestError = errorOf(m_best);

        m_choice.assign(n, 0);
        m_complete = true;
        branch(0, capacity, 0.0);

        s.feasible = true;
        s.choice = m_best;
        s.error = m_bestError;
        s.bytes = m_p.fixedBytes + bytesOf(m_best);
        s.nodes = m_nodes;
        s.optimal = m_complete;
        s.lowerBound = m_complete ? s.error : std::min(root, s.error);
        s.gap = std::max(0.0, s.error - s.lowerBound);
        return s;
    }

private:
    double errorOf(const std::vector<size_t>& c) const
    {
        double e = 0;
        for (size_t i = 0; i < c.size(); ++i)
            e += m_p.options[i][c[i]].error;
        return e;
    }
    uint64_t bytesOf(const std::vector<size_t>& c) const
    {
        uint64_t b = 0;
        for (size_t i = 0; i < c.size(); ++i)
            b += m_p.options[i][c[i]].bytes;
        return b;
    }

    // Local search: the best single change per pass while any lowers the error and fits, then exchanges
    // (one tensor down, another up) while one helps; capped so that huge models stay interactive.
    void improve(std::vector<size_t>& c, uint64_t capacity) const
    {
        uint64_t used = bytesOf(c);
        uint64_t budget = 20'000'000; // option pairs examined at most
        for (int pass = 0; pass < 10000; ++pass) {
            double bestGain = 1e-12;
            size_t bi = SIZE_MAX, bo = 0;
            for (size_t i = 0; i < c.size(); ++i) {
                const auto& cur = m_p.options[i][c[i]];
                for (size_t o : m_hulls[i].pareto) {
                    const auto& opt = m_p.options[i][o];
                    const double gain = cur.error - opt.error;
                    if (gain <= bestGain || used - cur.bytes + opt.bytes > capacity)
                        continue;
                    bestGain = gain, bi = i, bo = o;
                }
            }
            if (bi != SIZE_MAX) {
                used = used - m_p.options[bi][c[bi]].bytes + m_p.options[bi][bo].bytes;
                c[bi] = bo;
                continue;
            }
            // No single change helps: try an exchange.
            bool moved = false;
            for (size_t i = 0; i < c.size() && !moved && budget > 0; ++i) {
                const auto& ci = m_p.options[i][c[i]];
                for (size_t oi : m_hulls[i].pareto) {
                    const auto& di = m_p.options[i][oi];
                    if (di.bytes >= ci.bytes)
                        continue; // a downgrade frees bytes
                    const double loss = di.error - ci.error;
                    const uint64_t room = capacity - (used - ci.bytes + di.bytes);
                    double best = loss + 1e-12 * std::max(1.0, std::abs(loss));
                    size_t bj = SIZE_MAX, boj = 0;
                    for (size_t j = 0; j < c.size(); ++j) {
                        if (j == i)
                            continue;
                        const auto& cj = m_p.options[j][c[j]];
                        for (size_t oj : m_hulls[j].pareto) {
                            --budget;
                            const auto& uj = m_p.options[j][oj];
                            if (uj.bytes <= cj.bytes || uj.bytes - cj.bytes > room)
                                continue;
                            const double gain = cj.error - uj.error;
                            if (gain > best)
                                best = gain, bj = j, boj = oj;
                        }
                    }
                    if (bj != SIZE_MAX) {
                        used = used - ci.bytes + di.bytes - m_p.options[bj][c[bj]].bytes +
                               m_p.options[bj][boj].bytes;
                        c[i] = oi;
                        c[bj] = boj;
                        moved = true;
                        break;
                    }
                }
            }
            if (!moved)
                return;
        }
    }

    void branch(size_t depth, uint64_t capacity, double fixedError)
    {
        if (!m_complete)
            return;
        if (++m_nodes > m_maxNodes) {
            m_complete = false;
            return;
        }
        if ((m_nodes & 1023) == 0 && m_job) {
            // Nodes mean nothing to a user, but against the limit they bound the remaining work.
            m_job->report(static_cast<double>(m_nodes) / static_cast<double>(std::max<uint64_t>(m_maxNodes, 1)),
                          "fitting");
            // A cancel is not the node limit: it ends the solve (Cancelled), never as a "not optimal" plan.
            m_job->throwIfCancelled();
        }
        const double tolerance = 1e-12 * std::max(1.0, std::abs(m_bestError));
        if (depth == m_order.size()) {
            if (fixedError < m_bestError - tolerance) {
                m_bestError = fixedError;
                m_best = m_choice;
            }
            return;
        }
        const double bound = fixedError + lpBound(depth, capacity);
        if (!(bound < m_bestError - tolerance))
            return;
        const size_t item = m_order[depth];
        // Most precise options first: they lead to good incumbents quickly.
        const auto& par = m_hulls[item].pareto;
        for (auto it = par.rbegin(); it != par.rend(); ++it) {
            const auto& o = m_p.options[item][*it];
            if (o.bytes > capacity)
                continue;
            m_choice[item] = *it;
            branch(depth + 1, capacity - o.bytes, fixedError + o.error);
            if (!m_complete)
                return;
        }
    }

    const BudgetProblem& m_p;
    JobControl* m_job;
    uint64_t m_maxNodes;
    uint64_t m_budget = 0;
    std::vector<Hull> m_hulls;
    std::vector<size_t> m_order, m_rank;
    std::vector<Upgrade> m_upgrades;
    std::vector<size_t> m_best, m_choice;
    double m_bestError = std::numeric_limits<double>::infinity();
    uint64_t m_nodes = 0;
    bool m_complete = true;

    friend std::vector<TradeoffPoint> qs::tradeoffCurve(const BudgetProblem&);
};

} // namespace

BudgetSolution solveBudget(const BudgetProblem& problem, uint64_t budgetBytes, JobControl* job,
                           const SolveOptions& options)
{
    checkCancel(job);
    Solver s(problem, budgetBytes, job, options.maxNodes);
    return s.solve();
}

BudgetSolution bruteForceBudget(const BudgetProblem& problem, uint64_t budgetBytes)
{
    long double combos = 1;
    for (const auto& o : problem.options)
        combos *= static_cast<long double>(o.size());
    if (combos > (1 << 22))
        throw Error(ErrorCode::BadValue, "too many combinations for brute force");
    const size_t n = problem.options.size();
    std::vector<size_t> c(n, 0);
    BudgetSolution best;
    best.error = std::numeric_limits<double>::infinity();
    while (true) {
        uint64_t bytes = problem.fixedBytes;
        double err = 0;
        for (size_t i = 0; i < n; ++i) {
            bytes += problem.options[i][c[i]].bytes;
            err += problem.options[i][c[i]].error;
        }
        if (bytes <= budgetBytes && err < best.error) {
            best.feasible = true;
            best.error = err;
            best.bytes = bytes;
            best.choice = c;
        }
        size_t k = 0;
        while (k < n && ++c[k] == problem.options[k].size())
            c[k++] = 0;
        if (k == n)
            break;
    }
    if (best.feasible) {
        best.optimal = true;
        best.lowerBound = best.error;
    }
    return best;
}

std::vector<TradeoffPoint> tradeoffCurve(const BudgetProblem& problem)
{
    Solver s(problem, std::numeric_limits<uint64_t>::max(), nullptr, 0);
    std::vector<TradeoffPoint> curve;
    TradeoffPoint p{problem.fixedBytes, 0};
    for (size_t i = 0; i < problem.options.size(); ++i) {
        const auto& o = problem.options[i][s.m_hulls[i].hull.front()];
        p.bytes += o.bytes;
        p.error += o.error;
    }
    curve.push_back(p);
    for (const auto& u : s.m_upgrades) {
        p.bytes += u.dBytes;
        p.error -= u.dError;
        curve.push_back(p);
    }
    return curve;
}

Plan applySolution(Plan plan, const BudgetProblem& problem, const BudgetSolution& solution)
{
    if (!solution.feasible || solution.choice.size() != problem.options.size())
        return plan;
    for (size_t i = 0; i < problem.options.size(); ++i) {
        const std::string& format = problem.options[i][solution.choice[i]].format;
        if (i < problem.members.size() && !problem.members[i].empty())
            plan.assignMany(problem.members[i], format);
        else
            plan.assign(problem.tensors[i], format);
    }
    return plan;
}

} // namespace qs
