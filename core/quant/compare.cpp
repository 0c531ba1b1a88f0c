#include "core/quant/compare.h"

#include "core/util/strings.h"

#include "core/infer/forward.h"
#include "core/model/dtype.h"
#include "core/quant/imatrix.h"
#include "core/util/error.h"
#include "core/util/threadpool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <mutex>

namespace qs {

namespace {

std::string shapeText(const std::vector<uint64_t>& shape)
{
    return shape.empty() ? "scalar" : joinShape(shape, " x ");
}

// Why the pair cannot be compared (empty when it can).
std::string pairProblem(const TensorInfo& a, const TensorInfo& b)
{
    if (!dtypeInfo(a.dtype).decodable && a.dtype != DType::Packed)
        return std::string("the reference's type ") + dtypeName(a.dtype) + " cannot be decoded";
    if (!dtypeInfo(b.dtype).decodable && b.dtype != DType::Packed)
        return std::string("the candidate's type ") + dtypeName(b.dtype) + " cannot be decoded";
    if (a.elements() != b.elements() || a.columns() != b.columns())
        return "shapes differ: " + shapeText(a.shape) + " against " + shapeText(b.shape);
    return {};
}

// llama.cpp's converter stores a Llama's q and k rows permuted against Hugging Face's (rope on adjacent pairs
// instead of halves): within a head of d rows, GGUF row 2i + j is Hugging Face row j * d/2 + i. For a GGUF /
// Hugging Face pair of q or k, the candidate row each reference row compares with; empty when the rows
// correspond one to one.
std::vector<uint64_t> ropeRowMap(const Model& refModel, const TensorInfo& a, const TensorInfo& b)
{
    const bool refGguf = a.name.rfind("blk.", 0) == 0, candGguf = b.name.rfind("blk.", 0) == 0;
    if (refGguf == candGguf)
        return {};
    const std::string& gguf = refGguf ? a.name : b.name;
    const bool q = gguf.find(".attn_q.weight") != std::string::npos;
    const bool k = gguf.find(".attn_k.weight") != std::string::npos;
    if (!q && !k)
        return {};
    uint32_t heads = 0;
    try {
        const TransformerConfig c = transformerConfig(refModel);
        heads = q ? c.heads : c.kvHeads;
    } catch (const std::exception&) {
        return {}; // not a model the forward pass knows: compare as stored
    }
    const uint64_t rows = a.rows();
    if (heads == 0 || rows % heads != 0 || (rows / heads) % 2 != 0)
        return {};
    const uint64_t d = rows / heads, half = d / 2;
    std::vector<uint64_t> map(rows);
    for (uint64_t h = 0; h < heads; ++h)
        for (uint64_t i = 0; i < half; ++i)
            for (uint64_t j = 0; j < 2; ++j) {
                const uint64_t ggufRow = h * d + 2 * i + j, hfRow = h * d + j * half + i;
                map[refGguf ? ggufRow : hfRow] = refGguf ? hfRow : ggufRow;
            }
    return map;
}

struct WorkerState {
    ErrorAccumulator error;
    std::vector<uint64_t> counts; // dense difference histogram, one count per grid key
    double minDiff = std::numeric_limits<double>::infinity();
    double maxDiff = -std::numeric_limits<double>::infinity();
    std::vector<float> ref, cand;
};

void compareTensor(const Model& refModel, const Model& candModel, const CompareParams& params,
                   TensorComparison& out, const TensorInfo& a, const TensorInfo& b, JobControl* job)
{
    const uint64_t rows = a.rows(), cols = a.columns();
    const std::vector<uint64_t> rowMap = ropeRowMap(refModel, a, b);
    out.ropePermuted = !rowMap.empty();
    out.rows = rows;
    out.cols = cols;
    const uint64_t chunkRows = std::max<uint64_t>(1, params.chunkElements / std::max<uint64_t>(1, cols));
    const uint64_t chunks = (rows + chunkRows - 1) / chunkRows;
    const unsigned workers =
        static_cast<unsigned>(std::min<uint64_t>(resolveThreads(params.threads), std::max<uint64_t>(1, chunks)));
    std::vector<WorkerState> states(workers);
    for (WorkerState& s : states)
        s.counts.assign(Histogram::kKeys, 0);
    std::atomic<uint64_t> next{0};
    ThreadPool::instance().runWorkers(workers, [&](unsigned w) {
        WorkerState& s = states[w];
        for (;;) {
            if (job && job->cancelled())
                return;
            const uint64_t c = next.fetch_add(1);
            if (c >= chunks)
                return;
            const uint64_t r0 = c * chunkRows, n = std::min(chunkRows, rows - r0);
            s.ref.resize(n * cols);
            s.cand.resize(n * cols);
            refModel.decodeRows(a, r0, n, s.ref.data());
            if (rowMap.empty())
                candModel.decodeRows(b, r0, n, s.cand.data());
            else
                for (uint64_t r = 0; r < n; ++r)
                    candModel.decodeRows(b, rowMap[r0 + r], 1, s.cand.data() + r * cols);
            s.error.add(s.ref.data(), s.cand.data(), n, cols);
            for (size_t i = 0; i < s.ref.size(); ++i) {
                const float d = s.cand[i] - s.ref[i];
                if (!std::isfinite(d))
                    continue;
                ++s.counts[Histogram::keyOf(d)];
                s.minDiff = std::min(s.minDiff, double(d));
                s.maxDiff = std::max(s.maxDiff, double(d));
            }
        }
    });
    if (job)
        job->throwIfCancelled();
    for (size_t w = 1; w < states.size(); ++w) {
        states[0].error.merge(states[w].error);
        for (size_t k = 0; k < Histogram::kKeys; ++k)
            states[0].counts[k] += states[w].counts[k];
        states[0].minDiff = std::min(states[0].minDiff, states[w].minDiff);
        states[0].maxDiff = std::max(states[0].maxDiff, states[w].maxDiff);
    }
    out.metrics = states[0].error.result();
    out.difference = Histogram::fromDense(states[0].counts.data(), false);
    if (states[0].minDiff <= states[0].maxDiff)
        out.differenceBounds = {states[0].minDiff, states[0].maxDiff};
}

} // namespace

const TensorInfo* matchingTensor(const Model& candidate, const TensorInfo& reference)
{
    if (const TensorInfo* t = candidate.find(reference.name))
        return t;
    if (auto gguf = hfToGgufName(reference.name))
        if (const TensorInfo* t = candidate.find(*gguf))
            return t;
    if (auto hf = ggufToHfName(reference.name))
        if (const TensorInfo* t = candidate.find(*hf))
            return t;
    return nullptr;
}

CompareResult compareModels(const CompareParams& params, JobControl* job,
                            const std::function<void(const TensorComparison&)>& onTensor)
{
    if (!params.reference)
        throw Error(ErrorCode::BadValue, "no reference model to compare with");
    CompareResult result;
    result.candidate = params.candidate;
    if (!result.candidate) {
        reportProgress(job, 0.0, "opening " + params.candidatePath.filename().string());
        result.candidate = openModel(params.candidatePath, job);
    }
    const Model& ref = *params.reference;
    const Model& cand = *result.candidate;
    std::vector<std::pair<const TensorInfo*, const TensorInfo*>> pairs;
    std::vector<const TensorInfo*> matched;
    uint64_t totalValues = 0;
    for (const TensorInfo& t : ref.tensors()) {
        if (params.filter && !params.filter(t))
            continue;
        const TensorInfo* c = matchingTensor(cand, t);
        pairs.emplace_back(&t, c);
        if (c) {
            matched.push_back(c);
            totalValues += t.elements();
        }
    }
    // Without a filter: what the candidate has beyond the reference (extra scales, a rope table ...).
    if (!params.filter)
        for (const TensorInfo& t : cand.tensors())
            if (std::find(matched.begin(), matched.end(), &t) == matched.end() && !matchingTensor(ref, t))
                result.onlyInCandidate.push_back(t.name);
    if (pairs.empty())
        throw Error(ErrorCode::BadValue, "no tensor of the reference matches the filter");

    uint64_t doneValues = 0;
    for (const auto& [a, b] : pairs) {
        if (job)
            job->throwIfCancelled();
        TensorComparison tc;
        tc.reference = a->name;
        tc.referenceType = dtypeName(a->dtype);
        if (!b) {
            tc.error = "not in the candidate model";
        } else {
            tc.candidate = b->name;
            tc.candidateType = dtypeName(b->dtype);
            tc.error = pairProblem(*a, *b);
            if (tc.ok()) {
                try {
                    compareTensor(ref, cand, params, tc, *a, *b, job);
                } catch (const CancelledError&) {
                    throw;
                } catch (const std::exception& e) {
                    tc.error = e.what();
                }
            }
            doneValues += a->elements();
        }
        if (job && totalValues > 0)
            job->reportBytes(doneValues, totalValues, a->name);
        if (onTensor)
            onTensor(tc);
        result.tensors.push_back(std::move(tc));
    }
    return result;
}

CompareJob::CompareJob(CompareParams params) : BasicJob("Comparing models", std::move(params)) {}

void CompareJob::execute(JobControl& control)
{
    m_result = compareModels(m_params, &control, [this](const TensorComparison& t) { m_finished.push(t); });
}

} // namespace qs
