// AWQ scale and clip search. See awq.h for the method and docs/quantize.md for measured results.
#include "core/quant/awq.h"

#include "core/util/error.h"
#include "core/util/job.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>

namespace qs {

namespace {

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// A relative improvement below this is float noise, not a better choice: the earlier (simpler) candidate
// stays, so that α = 0 and "no clipping" win ties.
constexpr double kMinGain = 1e-6;

// ||E X||² for row-major E (rows x cols). With more tokens than input channels the Gram matrix X Xᵀ is the
// cheaper way (tr(E G Eᵀ)); both give the same value up to float rounding.
class OutputError {
public:
    explicit OutputError(const Eigen::MatrixXf& x) : m_x(x), m_gram(x.cols() > x.rows())
    {
        if (m_gram)
            m_g.noalias() = x * x.transpose();
    }
    double operator()(const float* e, uint64_t rows, uint64_t cols) const
    {
        Eigen::Map<const RowMajor> E(e, Eigen::Index(rows), Eigen::Index(cols));
        if (m_gram) {
            const Eigen::MatrixXf EG = E * m_g;
            return EG.cwiseProduct(E).cast<double>().sum();
        }
        const Eigen::MatrixXf Y = E * m_x;
        return Y.cast<double>().squaredNorm();
    }

private:
    const Eigen::MatrixXf& m_x;
    bool m_gram;
    Eigen::MatrixXf m_g;
};

// wMean: empty for the plain family, else the duo family's per-channel weight statistic.
std::vector<float> scalesFor(const Eigen::VectorXf& meanAbs, double alpha,
                             const std::vector<float>& wMean = {})
{
    const Eigen::Index n = meanAbs.size();
    std::vector<float> s(static_cast<size_t>(n));
    float lo = INFINITY, hi = 0;
    for (Eigen::Index j = 0; j < n; ++j) {
        const double base = std::max<double>(meanAbs(j), 1e-4);
        float v = alpha == 0 ? 1.0f : static_cast<float>(std::pow(base, alpha));
        if (!wMean.empty())
            v = std::max(1e-4f, static_cast<float>(std::pow(double(meanAbs(j)), alpha) /
                                                   (std::pow(double(wMean[size_t(j)]), 1 - alpha) + 1e-4)));
        s[size_t(j)] = v;
        lo = std::min(lo, v);
        hi = std::max(hi, v);
    }
    const float norm = std::sqrt(lo * hi);
    if (norm > 0 && std::isfinite(norm))
        for (float& v : s)
            v /= norm;
    return s;
}

// One layer as the search sees it: the output rows its error is measured on (all of them, or an evenly
// spread sample when the tensor holds more than AwqOptions::sampleWeights weights), those rows' weights, and
// what the format needs to quantize a part of the tensor exactly as it quantizes the whole.
struct SampledLayer {
    const AwqLinear* layer = nullptr;
    std::vector<uint64_t> rows; // the sampled rows, ascending
    std::vector<float> w;       // their weights, rows.size() x cols
    bool all = true;            // every row: plain roundTrip, exact errors
    double factor = 1;          // layer rows / sampled rows: the sample's error scaled to the whole layer
    std::vector<float> colMin, colMax; // per column over every row (formats with one scale per tensor)
};

SampledLayer sampleLayer(const AwqLinear& l, uint64_t budget)
{
    SampledLayer sl;
    sl.layer = &l;
    const uint64_t rows = l.rows, cols = l.cols;
    // Whole blocks of rowAlignment rows (NF4's flat blocks), so that the sample quantizes like the tensor.
    const uint64_t align = l.format ? std::max<uint64_t>(1, l.format->rowAlignment(cols)) : 1;
    const uint64_t want = budget == 0 ? rows : std::max<uint64_t>(1, budget / std::max<uint64_t>(1, cols));
    if (!l.format)
        return sl; // kept in float: no error to measure
    if (want >= rows || rows % align != 0) {
        sl.rows.resize(rows);
        for (uint64_t r = 0; r < rows; ++r)
            sl.rows[r] = r;
        sl.w.assign(l.weights, l.weights + rows * cols);
        return sl;
    }
    const uint64_t blocks = rows / align, take = std::min(blocks, (want + align - 1) / align);
    for (uint64_t i = 0; i < take; ++i) {
        const uint64_t b = i * blocks / take; // evenly spread: every head / group of rows is represented
        for (uint64_t r = b * align; r < (b + 1) * align; ++r)
            sl.rows.push_back(r);
    }
    sl.all = false;
    sl.factor = double(rows) / double(sl.rows.size());
    sl.w.resize(sl.rows.size() * cols);
    for (size_t i = 0; i < sl.rows.size(); ++i)
        std::copy_n(l.weights + sl.rows[i] * cols, cols, sl.w.begin() + long(i * cols));
    if (l.format->needsTensorRange()) {
        sl.colMin.assign(cols, INFINITY);
        sl.colMax.assign(cols, -INFINITY);
        for (uint64_t r = 0; r < rows; ++r)
            for (uint64_t c = 0; c < cols; ++c) {
                const float v = l.weights[r * cols + c];
                sl.colMin[c] = std::min(sl.colMin[c], v);
                sl.colMax[c] = std::max(sl.colMax[c], v);
            }
    }
    return sl;
}

// Error of one layer quantized with the scales: ||(Q(W s)/s − W) X||² on the sampled rows, times factor.
double scaledError(const SampledLayer& sl, const std::vector<float>& s, const OutputError& err,
                   std::vector<float>& a, std::vector<float>& b)
{
    const AwqLinear& l = *sl.layer;
    if (!l.format)
        return 0;
    const uint64_t rows = sl.rows.size(), cols = l.cols;
    a = sl.w;
    scaleColumns(a, rows, cols, s);
    b.resize(a.size());
    if (sl.all || sl.colMin.empty()) {
        l.format->roundTrip(a.data(), rows, cols, b.data());
    } else {
        // The whole scaled tensor's range: s > 0, so column c spans [s·min, s·max] exactly as rounded.
        TensorRange range{INFINITY, -INFINITY};
        for (uint64_t c = 0; c < cols; ++c) {
            range.min = std::min(range.min, sl.colMin[c] * s[c]);
            range.max = std::max(range.max, sl.colMax[c] * s[c]);
        }
        l.format->roundTripChunk(a.data(), rows, cols, b.data(), nullptr, range);
    }
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) {
            const uint64_t i = r * cols + c;
            b[i] = b[i] / s[c] - sl.w[i];
        }
    return err(b.data(), rows, cols) * sl.factor;
}

// The error of a whole-tensor difference e (rows x cols) on the sampled rows, times factor.
double sampledError(const SampledLayer& sl, const std::vector<float>& e, const OutputError& err)
{
    const uint64_t cols = sl.layer->cols;
    if (sl.all)
        return err(e.data(), sl.rows.size(), cols);
    std::vector<float> g(sl.rows.size() * cols);
    for (size_t i = 0; i < sl.rows.size(); ++i)
        std::copy_n(e.begin() + long(sl.rows[i] * cols), cols, g.begin() + long(i * cols));
    return err(g.data(), sl.rows.size(), cols) * sl.factor;
}

// AutoAWQ's weight statistic: |w| relative to the largest |w| of its quantization group (the first quantized
// layer's group size; whole rows otherwise), averaged over every output row of the group's layers.
std::vector<float> weightMean(const std::vector<AwqLinear>& layers, uint64_t cols)
{
    uint64_t gs = cols;
    for (const auto& l : layers)
        if (l.format) {
            if (l.format->traits().groupSize > 0)
                gs = uint64_t(l.format->traits().groupSize);
            break;
        }
    std::vector<double> sum(cols, 0.0);
    uint64_t rows = 0;
    for (const auto& l : layers) {
        for (uint64_t r = 0; r < l.rows; ++r) {
            const float* w = l.weights + r * cols;
            for (uint64_t c0 = 0; c0 < cols; c0 += gs) {
                const uint64_t c1 = std::min(cols, c0 + gs);
                float mx = 0;
                for (uint64_t c = c0; c < c1; ++c)
                    mx = std::max(mx, std::abs(w[c]));
                for (uint64_t c = c0; c < c1; ++c)
                    sum[c] += std::abs(w[c]) / (mx + 1e-6f);
            }
        }
        rows += l.rows;
    }
    std::vector<float> out(cols);
    for (uint64_t c = 0; c < cols; ++c)
        out[c] = float(sum[c] / double(std::max<uint64_t>(1, rows)));
    return out;
}

// Why a format gets no clip search (empty: it does).
std::string clipSkipReason(const QuantFormat& f)
{
    const auto& t = f.traits();
    if (t.kind == FormatKind::Ggml)
        return t.name + " chooses its own block scales: no clipping search";
    if (t.kind != FormatKind::Integer)
        return t.name + " is not an integer format: no clipping search";
    if (t.groupSize == 0)
        return t.name + " has one scale for the whole tensor: no per-group clipping";
    return {};
}

// Clamps each (row, group) of w to ±ratio·max|w| of that group.
void clampGroups(const std::vector<float>& w, uint64_t rows, uint64_t cols, uint64_t groupSize,
                 const std::vector<float>& ratioOf, std::vector<float>& out)
{
    const uint64_t groups = (cols + groupSize - 1) / groupSize;
    out.resize(w.size());
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t g = 0; g < groups; ++g) {
            const uint64_t c0 = g * groupSize, c1 = std::min(cols, c0 + groupSize);
            float mx = 0;
            for (uint64_t c = c0; c < c1; ++c)
                mx = std::max(mx, std::abs(w[r * cols + c]));
            const float lim = mx * ratioOf[r * groups + g];
            for (uint64_t c = c0; c < c1; ++c)
                out[r * cols + c] = std::clamp(w[r * cols + c], -lim, lim);
        }
}

void clipSearch(const SampledLayer& sl, const std::vector<float>& s, const Eigen::MatrixXf& x,
                const OutputError& err, const AwqOptions& o, AwqLayerResult& res, JobControl* job)
{
    const AwqLinear& l = *sl.layer;
    const QuantFormat& f = *l.format;
    const uint64_t rows = l.rows, cols = l.cols;
    const uint64_t gs = f.traits().groupSize > 0 ? uint64_t(f.traits().groupSize) : cols;
    const uint64_t groups = (cols + gs - 1) / gs;
    // Inputs in the scaled domain: (W s)(X / s) = W X. Only the Gram matrix's diagonal blocks are needed
    // (one per quantization group): cols x gs x tokens, not cols² x tokens.
    Eigen::MatrixXf xs = x;
    for (Eigen::Index j = 0; j < xs.rows(); ++j)
        xs.row(j) /= s[size_t(j)];
    std::vector<Eigen::MatrixXf> gram(groups);
    for (uint64_t g = 0; g < groups; ++g) {
        const Eigen::Index c0 = Eigen::Index(g * gs), n = Eigen::Index(std::min(cols, g * gs + gs) - g * gs);
        gram[g].noalias() = xs.middleRows(c0, n) * xs.middleRows(c0, n).transpose();
    }

    std::vector<float> ratios;
    const int steps = std::max(1, static_cast<int>(std::lround(o.maxShrink * o.clipGrid)));
    for (int i = 0; i < steps; ++i)
        ratios.push_back(1.0f - float(i) / float(o.clipGrid));
    // errs[k][r * groups + g]: the group's output error at ratio k (cross-group terms left out, as AWQ does).
    std::vector<std::vector<double>> errs(ratios.size(), std::vector<double>(rows * groups));
    std::atomic<size_t> next{0};
    const unsigned workers = std::min<unsigned>(resolveThreads(o.threads), unsigned(ratios.size()));
    ThreadPool::instance().runWorkers(workers, [&](unsigned) {
        std::vector<float> clamped, q;
        for (;;) {
            const size_t k = next.fetch_add(1);
            if (k >= ratios.size() || (job && job->cancelled()))
                return;
            clampGroups(res.weights, rows, cols, gs, std::vector<float>(rows * groups, ratios[k]), clamped);
            q.resize(clamped.size());
            f.roundTrip(clamped.data(), rows, cols, q.data());
            for (size_t i = 0; i < q.size(); ++i)
                q[i] -= res.weights[i];
            Eigen::Map<const RowMajor> E(q.data(), Eigen::Index(rows), Eigen::Index(cols));
            for (uint64_t g = 0; g < groups; ++g) {
                const Eigen::Index c0 = Eigen::Index(g * gs),
                                   n = Eigen::Index(std::min(cols, g * gs + gs) - g * gs);
                const auto Eg = E.middleCols(c0, n);
                const Eigen::MatrixXf EG = Eg * gram[g];
                const Eigen::VectorXd perRow = EG.cwiseProduct(Eg).cast<double>().rowwise().sum();
                for (uint64_t r = 0; r < rows; ++r)
                    errs[k][r * groups + g] = perRow(Eigen::Index(r));
            }
        }
    });
    checkCancel(job);
    std::vector<float> best(rows * groups, 1.0f);
    for (uint64_t i = 0; i < rows * groups; ++i) {
        double e = errs[0][i];
        for (size_t k = 1; k < ratios.size(); ++k)
            if (errs[k][i] < e * (1 - kMinGain)) {
                e = errs[k][i];
                best[i] = ratios[k];
            }
    }
    std::vector<float> clamped;
    clampGroups(res.weights, rows, cols, gs, best, clamped);
    std::vector<float> q(clamped.size());
    f.roundTrip(clamped.data(), rows, cols, q.data());
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c) {
            const uint64_t i = r * cols + c;
            q[i] = q[i] / s[c] - l.weights[i];
        }
    const double e = sampledError(sl, q, err);
    if (e < res.errorScaled * (1 - kMinGain)) {
        res.weights = std::move(clamped);
        res.clipRatios = std::move(best);
        res.groupsPerRow = int(groups);
        res.errorAfter = e;
    } else {
        res.clipNote = "clipping did not lower the output error";
    }
}

} // namespace

AwqGroupResult awqSearch(const std::vector<AwqLinear>& layers, const Eigen::MatrixXf& x,
                         const Eigen::VectorXf& meanAbs, const AwqOptions& options, JobControl* job)
{
    if (layers.empty())
        throw Error(ErrorCode::BadValue, "AWQ: an empty layer group");
    const uint64_t cols = uint64_t(x.rows());
    if (uint64_t(meanAbs.size()) != cols)
        throw Error(ErrorCode::BadValue, "AWQ: " + std::to_string(meanAbs.size()) +
                                             " activation statistics for " + std::to_string(cols) +
                                             " input channels");
    for (const auto& l : layers) {
        if (l.cols != cols || !l.weights)
            throw Error(ErrorCode::BadValue, "AWQ: " + l.name + " has " + std::to_string(l.cols) +
                                                 " inputs, the calibration data " + std::to_string(cols));
        if (l.format && !l.format->supports(l.rows, l.cols))
            throw Error(ErrorCode::BadValue, "AWQ: " + l.format->name() + " cannot store " + l.name);
    }
    const OutputError err(x);
    const int grid = options.scale ? std::max(1, options.grid) : 0;
    const size_t perFamily = size_t(grid) + 1;
    const bool duo = options.scale && options.duo;
    std::vector<float> wMean = duo ? weightMean(layers, cols) : std::vector<float>{};
    Eigen::VectorXf statistic = meanAbs;
    if (options.tieHeads > 0) {
        statistic = tieQueryHeads(meanAbs, options.tieHeads, options.tieKvHeads, options.tieHeadDim);
        if (duo) {
            const Eigen::VectorXf tied =
                tieQueryHeads(Eigen::Map<const Eigen::VectorXf>(wMean.data(), Eigen::Index(cols)),
                              options.tieHeads, options.tieKvHeads, options.tieHeadDim);
            wMean.assign(tied.data(), tied.data() + tied.size());
        }
    }
    std::vector<SampledLayer> sampled;
    for (const auto& l : layers)
        sampled.push_back(sampleLayer(l, options.sampleWeights));
    const size_t families = duo ? 2 : 1, points = perFamily * families;
    // Grid point i: family i / perFamily (0 plain, 1 duo), α = (i % perFamily) / grid.
    auto scalesAt = [&](size_t i) {
        const double alpha = grid == 0 ? 0.0 : double(i % perFamily) / grid;
        return scalesFor(statistic, alpha, i >= perFamily ? wMean : std::vector<float>{});
    };
    // errs[i * layers + k]: layer k's error at grid point i (NaN: not evaluated). One work item per (point,
    // layer); the group's sum is taken in layer order afterwards, so the result does not depend on threads.
    const size_t nl = layers.size();
    std::vector<double> errs(points * nl, std::nan(""));
    auto evaluate = [&](const std::vector<size_t>& pts) {
        if (pts.empty())
            return;
        std::atomic<size_t> next{0};
        const size_t items = pts.size() * nl;
        const unsigned workers = std::min<unsigned>(resolveThreads(options.threads), unsigned(items));
        ThreadPool::instance().runWorkers(workers, [&](unsigned) {
            std::vector<float> a, b, s;
            size_t have = SIZE_MAX;
            for (;;) {
                const size_t item = next.fetch_add(1);
                if (item >= items || (job && job->cancelled()))
                    return;
                const size_t i = pts[item / nl], k = item % nl;
                if (i != have) {
                    s = scalesAt(i);
                    have = i;
                }
                errs[i * nl + k] = scaledError(sampled[k], s, err, a, b);
            }
        });
        checkCancel(job);
    };
    auto groupError = [&](size_t i) {
        double e = 0;
        for (size_t k = 0; k < nl; ++k)
            e += errs[i * nl + k];
        return e;
    };
    // Coarse pass: every coarse-th α of each family (both ends included), then the skipped neighbours of
    // each family's best coarse point; coarse = 1 evaluates the whole grid.
    const size_t coarse = size_t(std::max(1, options.coarse));
    std::vector<size_t> pts;
    for (size_t f = 0; f < families; ++f)
        for (size_t j = 0; j < perFamily; ++j)
            if (j % coarse == 0 || j + 1 == perFamily)
                pts.push_back(f * perFamily + j);
    evaluate(pts);
    std::vector<double> errors(points, std::nan(""));
    for (size_t i : pts)
        errors[i] = groupError(i);
    if (coarse > 1) {
        std::vector<size_t> refine;
        for (size_t f = 0; f < families; ++f) {
            size_t best = f * perFamily;
            for (size_t j = 1; j < perFamily; ++j) {
                const size_t i = f * perFamily + j;
                if (!std::isnan(errors[i]) && errors[i] < errors[best] * (1 - kMinGain))
                    best = i;
            }
            const size_t j = best % perFamily;
            for (size_t d = 1; d < coarse; ++d) {
                if (j >= d && std::isnan(errors[best - d]))
                    refine.push_back(best - d);
                if (j + d < perFamily && std::isnan(errors[best + d]))
                    refine.push_back(best + d);
            }
        }
        std::sort(refine.begin(), refine.end());
        evaluate(refine);
        for (size_t i : refine)
            errors[i] = groupError(i);
    }
    AwqGroupResult result;
    result.alphaErrors.assign(errors.begin(), errors.begin() + long(perFamily));
    if (duo)
        result.duoErrors.assign(errors.begin() + long(perFamily), errors.end());
    // Plain first: on a tie the plain family and the smaller α (α = 0 is RTN) win.
    size_t best = 0;
    for (size_t i = 1; i < points; ++i)
        if (!std::isnan(errors[i]) && errors[i] < errors[best] * (1 - kMinGain))
            best = i;
    result.alpha = grid == 0 ? 0.0 : double(best % perFamily) / grid;
    result.duo = best >= perFamily;
    result.scales = scalesAt(best);

    for (size_t k = 0; k < nl; ++k) {
        const AwqLinear& l = layers[k];
        AwqLayerResult r;
        r.name = l.name;
        r.weights.assign(l.weights, l.weights + l.rows * l.cols);
        scaleColumns(r.weights, l.rows, l.cols, result.scales);
        // Point 0 is plain α = 0, s = 1: round-to-nearest (with scale = false the only point).
        r.errorRtn = errs[k];
        r.errorScaled = r.errorAfter = errs[best * nl + k];
        if (!l.format)
            r.clipNote = "kept in float";
        else if (!options.clip)
            r.clipNote = "clipping search off";
        else
            r.clipNote = clipSkipReason(*l.format);
        if (l.format && options.clip && r.clipNote.empty())
            clipSearch(sampled[k], result.scales, x, err, options, r, job);
        result.errorRtn += r.errorRtn;
        result.errorScaled += r.errorScaled;
        result.errorAfter += r.errorAfter;
        result.layers.push_back(std::move(r));
        checkCancel(job);
    }
    return result;
}

std::vector<float> awqDequantized(const std::vector<float>& scaledWeights, uint64_t rows, uint64_t cols,
                                  const std::vector<float>& scales, const QuantFormat& format)
{
    std::vector<float> out(scaledWeights.size());
    format.roundTrip(scaledWeights.data(), rows, cols, out.data());
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c)
            out[r * cols + c] /= scales[c];
    return out;
}

double awqOutputError(const float* a, const float* b, uint64_t rows, uint64_t cols, const Eigen::MatrixXf& x)
{
    Eigen::Map<const RowMajor> A(a, Eigen::Index(rows), Eigen::Index(cols));
    Eigen::Map<const RowMajor> B(b, Eigen::Index(rows), Eigen::Index(cols));
    const Eigen::MatrixXd d = ((A - B).cast<double>()) * x.cast<double>();
    return d.squaredNorm();
}

void scaleColumns(std::vector<float>& w, uint64_t rows, uint64_t cols, const std::vector<float>& s)
{
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c)
            w[r * cols + c] *= s[c];
}

void divideRows(std::vector<float>& w, uint64_t rows, uint64_t cols, const std::vector<float>& s)
{
    for (uint64_t r = 0; r < rows; ++r)
        for (uint64_t c = 0; c < cols; ++c)
            w[r * cols + c] /= s[r];
}

void divideNorm(std::vector<float>& g, const std::vector<float>& s)
{
    for (size_t j = 0; j < g.size(); ++j)
        g[j] /= s[j];
}

std::optional<std::vector<float>> kvHeadScales(const std::vector<float>& oScales, uint32_t heads,
                                               uint32_t kvHeads, uint32_t headDim, std::string* why)
{
    if (kvHeads == 0 || heads % kvHeads != 0 || oScales.size() != size_t(heads) * headDim) {
        if (why)
            *why = "o's input width does not match the attention heads";
        return std::nullopt;
    }
    const uint32_t group = heads / kvHeads;
    std::vector<float> v(size_t(kvHeads) * headDim);
    for (uint32_t kv = 0; kv < kvHeads; ++kv)
        for (uint32_t d = 0; d < headDim; ++d) {
            const float first = oScales[size_t(kv * group) * headDim + d];
            for (uint32_t h = kv * group + 1; h < (kv + 1) * group; ++h)
                if (oScales[size_t(h) * headDim + d] != first) {
                    if (why)
                        *why = "grouped-query attention: query heads " + std::to_string(kv * group) +
                               " and " + std::to_string(h) + " share kv head " + std::to_string(kv) +
                               " but their scales differ, so v's rows cannot carry them";
                    return std::nullopt;
                }
            v[size_t(kv) * headDim + d] = first;
        }
    return v;
}

Eigen::VectorXf tieQueryHeads(const Eigen::VectorXf& meanAbs, uint32_t heads, uint32_t kvHeads,
                              uint32_t headDim)
{
    if (kvHeads == 0 || heads % kvHeads != 0 || meanAbs.size() != Eigen::Index(heads) * headDim)
        return meanAbs;
    const uint32_t group = heads / kvHeads;
    Eigen::VectorXf out(meanAbs.size());
    for (uint32_t kv = 0; kv < kvHeads; ++kv)
        for (uint32_t d = 0; d < headDim; ++d) {
            float sum = 0;
            for (uint32_t h = kv * group; h < (kv + 1) * group; ++h)
                sum += meanAbs(Eigen::Index(h) * headDim + d);
            for (uint32_t h = kv * group; h < (kv + 1) * group; ++h)
                out(Eigen::Index(h) * headDim + d) = sum / float(group);
        }
    return out;
}

} // namespace qs
