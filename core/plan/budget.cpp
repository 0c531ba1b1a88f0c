#include "core/plan/budget.h"
#include "core/plan/sensitivityfile.h"
#include "core/plan/target.h"

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
    auto b = format.storedBytes(tensor.matrixRows(), tensor.matrixColumns());
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
        if (!f || !f->supports(t.matrixRows(), t.matrixColumns()))
            continue;
        auto bytes = f->storedBytes(t.matrixRows(), t.matrixColumns());
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
        opts.push_back({f->name(), *bytes, err, f->traits().kind != FormatKind::Float});
    }
    return opts;
}

// A target that needs a quantized tensor (GPTQModel, llm-compressor, compressed-tensors) cannot export an
// all-float plan, which is what a generous budget yields. The best plan with at least one quantized item
// then moves one item to a quantized option: the one that adds the least error (its bytes only fall, so
// the budget still holds). Any such plan has an error of at least Σ min_j + min_i (minQuantized_i - min_i),
// a lower bound that the result meets whenever every other item sits at its most precise option.
void quantizeOneItem(const BudgetProblem& p, uint64_t budget, BudgetSolution& sol)
{
    if (!sol.feasible || sol.choice.size() != p.options.size())
        return;
    double sumMin = 0;
    double boundStep = std::numeric_limits<double>::infinity();
    size_t bestItem = SIZE_MAX, bestOption = 0;
    double bestDelta = std::numeric_limits<double>::infinity();
    for (size_t i = 0; i < p.options.size(); ++i) {
        const BudgetOption& current = p.options[i][sol.choice[i]];
        if (current.quantized)
            return; // the plan already quantizes something
        double minError = std::numeric_limits<double>::infinity(), minQuantized = minError;
        for (size_t k = 0; k < p.options[i].size(); ++k) {
            const BudgetOption& o = p.options[i][k];
            minError = std::min(minError, o.error);
            if (!o.quantized)
                continue;
            minQuantized = std::min(minQuantized, o.error);
            const double delta = o.error - current.error;
            if (sol.bytes - current.bytes + o.bytes <= budget && delta < bestDelta) {
                bestDelta = delta;
                bestItem = i;
                bestOption = k;
            }
        }
        sumMin += minError;
        boundStep = std::min(boundStep, minQuantized - minError);
    }
    if (bestItem == SIZE_MAX)
        return; // no quantized option at all: the tiers hold only float formats
    const BudgetOption& from = p.options[bestItem][sol.choice[bestItem]];
    const BudgetOption& to = p.options[bestItem][bestOption];
    sol.bytes = sol.bytes - from.bytes + to.bytes;
    sol.error += bestDelta;
    sol.choice[bestItem] = bestOption;
    sol.lowerBound = std::max(sol.lowerBound, sumMin + boundStep);
    sol.gap = std::max(0.0, sol.error - sol.lowerBound);
    sol.optimal = sol.gap <= 1e-12 * std::max(1.0, std::abs(sol.error));
    if (sol.optimal)
        sol.lowerBound = sol.error, sol.gap = 0;
}

} // namespace

BudgetProblem makeBudgetProblem(const Plan& plan, const ModelLayout& model, const ErrorTable& errors,
                                const BudgetOptions& options)
{
    BudgetProblem p;
    p.needsQuantized = targetNeedsQuantizedTensor(options.target);
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
                s.quantized = o.quantized;
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
    // `classes`: items with identical option lists share a class (symmetry breaking); empty = none.
    Solver(const BudgetProblem& p, uint64_t budget, JobControl* job, uint64_t maxNodes,
           std::vector<size_t> classes = {}, uint64_t maxDpCells = 0)
        : m_p(p), m_job(job), m_maxNodes(maxNodes), m_maxDpCells(maxDpCells), m_class(std::move(classes))
    {
        const size_t n = p.options.size();
        for (const auto& o : p.options)
            if (o.empty())
                throw Error(ErrorCode::BadValue, "a budget item has no options");
        if (m_class.size() != n) {
            m_class.resize(n);
            std::iota(m_class.begin(), m_class.end(), 0);
        }
        m_hulls.reserve(n);
        for (const auto& o : p.options)
            m_hulls.push_back(buildHull(o));
        // Branch on the items whose choice matters most first; items of one class next to each other.
        m_order.resize(n);
        std::iota(m_order.begin(), m_order.end(), 0);
        std::vector<double> range(n);
        for (size_t i = 0; i < n; ++i) {
            const auto& h = m_hulls[i];
            range[i] = p.options[i][h.pareto.front()].error - p.options[i][h.pareto.back()].error;
        }
        std::stable_sort(m_order.begin(), m_order.end(), [&](size_t a, size_t b) {
            return range[a] != range[b] ? range[a] > range[b] : m_class[a] < m_class[b];
        });
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

    // LP relaxation of the items with rank >= depth and remaining capacity; +inf when infeasible. With
    // `integral`, the LP's integral part; with `slope`, the multiplier of the capacity (the error removed per
    // byte of the step the LP takes a fraction of; 0 when every step fits).
    double lpBound(size_t depth, uint64_t capacity, std::vector<size_t>* integral = nullptr,
                   long double* slope = nullptr) const
    {
        double err = 0;
        uint64_t used = 0;
        if (slope)
            *slope = 0;
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
                if (slope)
                    *slope = static_cast<long double>(u.dError) / static_cast<long double>(u.dBytes);
                return err - u.dError * static_cast<double>(left) / static_cast<double>(u.dBytes);
            }
        }
        return err;
    }

    uint64_t minBytes() const
    {
        uint64_t b = m_p.fixedBytes;
        for (size_t i = 0; i < m_p.options.size(); ++i)
            b += m_p.options[i][m_hulls[i].pareto.front()].bytes;
        return b;
    }

    BudgetSolution solve()
    {
        BudgetSolution s;
        const size_t n = m_order.size();
        if (const uint64_t least = minBytes(); least > m_budget) {
            s.bytes = least;
            return s;
        }
        const uint64_t capacity = m_budget - m_p.fixedBytes;
        std::vector<size_t> start(n);
        long double slope = 0;
        const double root = lpBound(0, capacity, &start, &slope);
        // Incumbent: the LP's integral part, then greedy repair with whatever capacity is left.
        m_best = start;
        improve(m_best, capacity);
        m_bestError = errorOf(m_best);

        const double tolerance = 1e-12 * std::max(1.0, std::abs(m_bestError));
        if (!(root < m_bestError - tolerance)) { // the incumbent meets the bound: nothing to search
            s.feasible = s.optimal = true;
            s.choice = m_best;
            s.error = s.lowerBound = m_bestError;
            s.bytes = m_p.fixedBytes + bytesOf(m_best);
            return s;
        }
        const Reduction red = reduce(slope, capacity);
        {
            // Search the reduced problem, seeded with the incumbent, then map its choice back.
            Solver sub(red.problem, m_budget - red.fixedBytesOut, m_job, m_maxNodes, red.classes);
            std::vector<size_t> seed(red.items.size());
            for (size_t k = 0; k < red.items.size(); ++k)
                seed[k] = red.optionIndex[k].at(m_best[red.items[k]]);
            sub.m_best = seed;
            sub.m_bestError = sub.errorOf(seed);
            sub.m_choice.assign(red.items.size(), 0);
            sub.m_pos.assign(red.items.size(), 0);
            sub.branch(0, m_budget - red.fixedBytesOut, 0.0);
            m_nodes = sub.m_nodes;
            m_complete = sub.m_complete;
            // The node limit stopped the search: an exact dynamic programme over the open items' bytes (in
            // units of their common divisor) when it is small enough.
            if (sub.m_bestError < sub.errorOf(seed)) {
                for (size_t k = 0; k < red.items.size(); ++k)
                    m_best[red.items[k]] = red.originalOption[k][sub.m_best[k]];
                m_bestError = errorOf(m_best);
            }
            if (!m_complete) {
                // Fix again with the search's better incumbent: fewer open items for the programme.
                const Reduction again = reduce(slope, capacity);
                std::vector<size_t> exact;
                if (exactByDp(again.problem, m_budget - again.fixedBytesOut, m_maxDpCells, exact)) {
                    std::vector<size_t> c = m_best;
                    for (size_t k = 0; k < again.items.size(); ++k)
                        c[again.items[k]] = again.originalOption[k][exact[k]];
                    if (errorOf(c) < m_bestError) {
                        m_best = std::move(c);
                        m_bestError = errorOf(m_best);
                    }
                    m_complete = true;
                }
            }
        }

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
    // Reduced-cost fixing (the Lagrangian of the capacity at the LP's multiplier): an option whose reduced
    // cost lifts the bound to the incumbent cannot be in a better plan and is dropped; items left with one
    // option are fixed. Items whose remaining options are identical form one class, so that the search
    // enumerates each multiset of choices once.
    struct Reduction {
        BudgetProblem problem;                                // the items still open
        std::vector<size_t> items;                            // their index in the full problem
        std::vector<std::map<size_t, size_t>> optionIndex;    // full option -> reduced option, per open item
        std::vector<std::vector<size_t>> originalOption;      // reduced option -> full option
        std::vector<size_t> classes;                          // class per open item
        uint64_t fixedBytesOut = 0;                           // bytes of the fixed items
        size_t kept = 0, total = 0;                           // options kept / before
    };
    Reduction reduce(long double slope, uint64_t capacity) const
    {
        Reduction r;
        const size_t n = m_order.size();
        std::vector<long double> best(n);
        long double lagrangian = -slope * static_cast<long double>(capacity);
        for (size_t i = 0; i < n; ++i) {
            long double m = std::numeric_limits<long double>::infinity();
            for (const auto& o : m_p.options[i])
                m = std::min(m, static_cast<long double>(o.error) + slope * static_cast<long double>(o.bytes));
            best[i] = m;
            lagrangian += m;
        }
        const long double cutoff =
            static_cast<long double>(m_bestError) - 1e-12L * std::max<long double>(1.0L, std::abs(m_bestError));
        r.problem.fixedBytes = 0;
        std::map<std::vector<std::pair<uint64_t, double>>, size_t> classOf;
        for (size_t i = 0; i < n; ++i) {
            std::vector<size_t> keep;
            for (size_t o : m_hulls[i].pareto) {
                ++r.total;
                const auto& opt = m_p.options[i][o];
                const long double reduced =
                    static_cast<long double>(opt.error) + slope * static_cast<long double>(opt.bytes) - best[i];
                if (o == m_best[i] || lagrangian + reduced < cutoff)
                    keep.push_back(o);
            }
            r.kept += keep.size();
            if (keep.size() == 1) {
                r.fixedBytesOut += m_p.options[i][keep.front()].bytes;
                continue;
            }
            std::vector<BudgetOption> opts;
            std::vector<std::pair<uint64_t, double>> key;
            std::map<size_t, size_t> index;
            for (size_t o : keep) {
                index[o] = opts.size();
                opts.push_back(m_p.options[i][o]);
                key.emplace_back(m_p.options[i][o].bytes, m_p.options[i][o].error);
            }
            r.classes.push_back(classOf.emplace(key, classOf.size()).first->second);
            r.items.push_back(i);
            r.optionIndex.push_back(std::move(index));
            r.originalOption.push_back(keep);
            r.problem.tensors.push_back(m_p.tensors.size() > i ? m_p.tensors[i] : std::string());
            r.problem.options.push_back(std::move(opts));
        }
        r.fixedBytesOut += m_p.fixedBytes;
        return r;
    }

    // Exact: minimise the error of `p`'s items within `capacity` bytes by dynamic programming over the bytes
    // above each item's smallest option, in units of their greatest common divisor. The choices are kept
    // in 1, 2 or 4 bits per (item, state). Returns false, without work, when the table would exceed
    // `maxCells` cells or an item has more than 16 options.
    bool exactByDp(const BudgetProblem& p, uint64_t capacity, uint64_t maxCells, std::vector<size_t>& out) const
    {
        const size_t n = p.options.size();
        if (n == 0 || maxCells == 0)
            return false;
        uint64_t least = 0, unit = 0;
        size_t most = 0;
        std::vector<uint64_t> base(n);
        for (size_t i = 0; i < n; ++i) {
            base[i] = std::numeric_limits<uint64_t>::max();
            for (const auto& o : p.options[i])
                base[i] = std::min(base[i], o.bytes);
            for (const auto& o : p.options[i])
                unit = std::gcd(unit, o.bytes - base[i]);
            least += base[i];
            most = std::max(most, p.options[i].size());
        }
        if (least > capacity || most > 16)
            return false;
        const uint64_t states = (unit ? (capacity - least) / unit : 0) + 1;
        if (states > maxCells / n)
            return false;
        const unsigned bits = most <= 2 ? 1 : most <= 4 ? 2 : 4;
        const uint64_t perItem = (states * bits + 63) / 64;
        std::vector<uint64_t> taken(perItem * n, 0);
        std::vector<double> best(states, 0.0); // least error with at most s units, items so far
        std::vector<std::vector<std::pair<uint64_t, double>>> steps(n);
        for (size_t i = 0; i < n; ++i)
            for (const auto& o : p.options[i])
                steps[i].emplace_back(unit ? (o.bytes - base[i]) / unit : 0, o.error);
        for (size_t i = 0; i < n; ++i) {
            if (m_job) {
                m_job->report(static_cast<double>(i) / static_cast<double>(n), "fitting");
                m_job->throwIfCancelled();
            }
            uint64_t* row = taken.data() + perItem * i;
            for (uint64_t s = states; s-- > 0;) {
                double e = std::numeric_limits<double>::infinity();
                uint64_t pick = 0;
                for (size_t o = 0; o < steps[i].size(); ++o) {
                    const auto& [w, err] = steps[i][o];
                    if (w <= s && best[s - w] + err < e)
                        e = best[s - w] + err, pick = o;
                }
                best[s] = e;
                row[s * bits / 64] |= pick << (s * bits % 64);
            }
        }
        out.assign(n, 0);
        uint64_t s = states - 1;
        const uint64_t mask = (uint64_t(1) << bits) - 1;
        for (size_t i = n; i-- > 0;) {
            const uint64_t* row = taken.data() + perItem * i;
            const size_t o = static_cast<size_t>((row[s * bits / 64] >> (s * bits % 64)) & mask);
            out[i] = o;
            s -= steps[i][o].first;
        }
        return true;
    }

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
        // Most precise options first: they lead to good incumbents quickly. An item of the same class as the
        // previous one takes no more precise an option than it did (the choices of identical items are
        // interchangeable, so each multiset is enumerated once).
        const auto& par = m_hulls[item].pareto;
        size_t top = par.size();
        if (depth > 0 && m_class[m_order[depth - 1]] == m_class[item])
            top = std::min(top, m_pos[depth - 1] + 1);
        for (size_t k = top; k-- > 0;) {
            const auto& o = m_p.options[item][par[k]];
            if (o.bytes > capacity)
                continue;
            m_choice[item] = par[k];
            m_pos[depth] = k;
            branch(depth + 1, capacity - o.bytes, fixedError + o.error);
            if (!m_complete)
                return;
        }
    }

    const BudgetProblem& m_p;
    JobControl* m_job;
    uint64_t m_maxNodes;
    uint64_t m_maxDpCells;
    uint64_t m_budget = 0;
    std::vector<Hull> m_hulls;
    std::vector<size_t> m_order, m_rank;
    std::vector<Upgrade> m_upgrades;
    std::vector<size_t> m_best, m_choice;
    std::vector<size_t> m_class; // class per item (identical options)
    std::vector<size_t> m_pos;   // pareto position chosen at each depth
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
    Solver s(problem, budgetBytes, job, options.maxNodes, {}, options.maxDpCells);
    BudgetSolution solution = s.solve();
    if (problem.needsQuantized)
        quantizeOneItem(problem, budgetBytes, solution);
    return solution;
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
    bool anyQuantizedOption = false;
    for (const auto& o : problem.options)
        for (const auto& x : o)
            anyQuantizedOption = anyQuantizedOption || x.quantized;
    const bool needQuantized = problem.needsQuantized && anyQuantizedOption;
    while (true) {
        uint64_t bytes = problem.fixedBytes;
        double err = 0;
        bool quantized = false;
        for (size_t i = 0; i < n; ++i) {
            bytes += problem.options[i][c[i]].bytes;
            err += problem.options[i][c[i]].error;
            quantized = quantized || problem.options[i][c[i]].quantized;
        }
        if (bytes <= budgetBytes && err < best.error && (quantized || !needQuantized)) {
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
