#include "core/io/packedweights.h"

#include "core/util/strings.h"

#include "core/quant/fp8.h"
#include "core/util/checked.h"
#include "core/util/error.h"

#include <cstring>
#include <map>
#include <optional>
#include <set>

namespace qs {

namespace {

// One stored part, viewed in its map (kept alive by the shared_ptr).
struct Part {
    std::shared_ptr<MappedFile> file;
    const std::byte* data = nullptr;
    DType dtype = DType::I32;
    uint64_t elements = 0;

    uint32_t word(uint64_t i) const
    {
        uint32_t v;
        std::memcpy(&v, data + 4 * i, 4);
        return v;
    }
    float value(uint64_t i) const
    {
        float v;
        const auto& info = dtypeInfo(dtype);
        decodeToFloat(dtype, data + i * info.blockBytes, 1, &v);
        return v;
    }
};

class Grouper {
public:
    Grouper(std::vector<StoredTensor>& tensors, const std::vector<std::shared_ptr<MappedFile>>& files)
        : m_tensors(tensors), m_files(files)
    {
        for (size_t i = 0; i < tensors.size(); ++i)
            m_index.emplace(tensors[i].info.name, i);
    }

    void run()
    {
        for (size_t i = 0; i < m_tensors.size(); ++i) {
            const std::string& name = m_tensors[i].info.name;
            if (endsWith(name, ".qweight"))
                gptq(i, name.substr(0, name.size() - 7));
            else if (endsWith(name, ".weight_packed"))
                packQuantized(i, name.substr(0, name.size() - 13));
        }
        for (size_t i = 0; i < m_tensors.size(); ++i) {
            const auto& t = m_tensors[i].info;
            if ((t.dtype == DType::F8_E4M3 || t.dtype == DType::F8_E5M2) && endsWith(t.name, ".weight") &&
                !m_consumed.count(i))
                fp8(i, t.name.substr(0, t.name.size() - 6));
        }
        std::vector<StoredTensor> out;
        out.reserve(m_tensors.size());
        for (size_t i = 0; i < m_tensors.size(); ++i) {
            if (auto it = m_replacement.find(i); it != m_replacement.end())
                out.push_back(std::move(it->second));
            else if (!m_consumed.count(i))
                out.push_back(std::move(m_tensors[i]));
        }
        m_tensors.swap(out);
    }

private:
    static bool endsWith(std::string_view s, std::string_view suffix)
    {
        return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
    }

    const StoredTensor* find(const std::string& name, size_t* index = nullptr) const
    {
        auto it = m_index.find(name);
        if (it == m_index.end())
            return nullptr;
        if (index)
            *index = it->second;
        return &m_tensors[it->second];
    }

    [[noreturn]] static void fail(const StoredTensor& t, const std::string& msg)
    {
        throw FormatError(ErrorCode::BadValue, t.file, t.info.name, t.fieldOffset, msg);
    }

    static std::string shapeText(const std::vector<uint64_t>& s) { return "[" + joinShape(s, ", ") + "]"; }

    static void expect(const StoredTensor& t, std::initializer_list<DType> dtypes, size_t dims)
    {
        bool ok = false;
        for (DType d : dtypes)
            ok |= t.info.dtype == d;
        if (!ok)
            fail(t,
                 std::string("unexpected dtype ") + dtypeName(t.info.dtype) + " for a quantized weight part");
        if (t.info.shape.size() != dims)
            fail(t,
                 "expected " + std::to_string(dims) + " dimensions, found shape " + shapeText(t.info.shape));
        for (uint64_t d : t.info.shape)
            if (d == 0)
                fail(t, "empty dimension in shape " + shapeText(t.info.shape));
    }

    Part part(const StoredTensor& t) const
    {
        if (t.info.fileIndex >= m_files.size())
            fail(t, "refers to a missing file");
        const auto& file = m_files[t.info.fileIndex];
        const auto span = file->range(t.info.offset, t.info.bytes, t.info.name.c_str());
        return {file, span.data(), t.info.dtype, t.info.elements()};
    }

    static uint64_t ceilDiv(uint64_t a, uint64_t b) { return a / b + (a % b != 0); }

    // The width among 2, 4 and 8 bits (32 / bits values per word) for which `words` holds `values`.
    static std::optional<int> bitsFor(uint64_t values, uint64_t words,
                                      std::optional<uint64_t> otherValues = {}, uint64_t otherWords = 0)
    {
        std::optional<int> found;
        for (int b : {2, 4, 8}) {
            const uint64_t pf = 32u / static_cast<uint64_t>(b);
            if (ceilDiv(values, pf) != words || (otherValues && ceilDiv(*otherValues, pf) != otherWords))
                continue;
            if (found)
                return std::nullopt; // ambiguous
            found = b;
        }
        return found;
    }

    static std::string schemeName(int bits, uint64_t groups, uint64_t k, bool symmetric)
    {
        return "INT" + std::to_string(bits) + "-" +
               (groups == 1 ? std::string("ch") : "g" + std::to_string(k / groups)) +
               (symmetric ? "-sym" : "-asym");
    }

    void replace(size_t main, const std::string& name, std::vector<uint64_t> shape,
                 std::shared_ptr<PackedWeight> pw, const std::vector<size_t>& parts)
    {
        StoredTensor logical = m_tensors[main];
        logical.info.name = name;
        logical.info.shape = std::move(shape);
        logical.info.dtype = DType::Packed;
        uint64_t total = 0;
        for (size_t p : parts) {
            total += m_tensors[p].info.bytes; // parts lie in files of checked sizes: no overflow
            pw->parts.push_back(m_tensors[p].info.name);
            m_consumed.insert(p);
        }
        pw->storedBytes = total;
        logical.info.packed = std::move(pw);
        if (find(name) && !m_consumed.count(m_index.at(name)))
            fail(m_tensors[main], "the checkpoint also stores a plain tensor " + name);
        m_replacement.emplace(main, std::move(logical));
    }

    void gptq(size_t qi, const std::string& base)
    {
        size_t zi, si, gi = SIZE_MAX;
        const StoredTensor& qw = m_tensors[qi];
        const StoredTensor* qz = find(base + "qzeros", &zi);
        const StoredTensor* sc = find(base + "scales", &si);
        const StoredTensor* gx = find(base + "g_idx", &gi);
        if (!qz || !sc)
            fail(qw, "GPTQ weight without " + std::string(!qz ? "qzeros" : "scales"));
        expect(qw, {DType::I32}, 2);
        expect(*qz, {DType::I32}, 2);
        expect(*sc, {DType::F16, DType::BF16, DType::F32}, 2);
        const uint64_t n = qw.info.shape[1], kw = qw.info.shape[0], groups = sc->info.shape[0];
        if (sc->info.shape[1] != n)
            fail(*sc,
                 "scales " + shapeText(sc->info.shape) + " do not match qweight " + shapeText(qw.info.shape));
        if (qz->info.shape[0] != groups)
            fail(*qz,
                 "qzeros " + shapeText(qz->info.shape) + " do not match scales " + shapeText(sc->info.shape));
        std::optional<uint64_t> k;
        if (gx) {
            expect(*gx, {DType::I32}, 1);
            k = gx->info.shape[0];
        }
        const auto bits = bitsFor(n, qz->info.shape[1], k, kw);
        if (!bits)
            fail(*qz, "cannot tell the bit width (2, 4 or 8) from qzeros " + shapeText(qz->info.shape) +
                          " and qweight " + shapeText(qw.info.shape));
        const uint64_t pf = 32u / static_cast<uint64_t>(*bits);
        const auto kk = k ? std::optional(*k) : checkedMul(kw, pf);
        if (!kk)
            fail(qw, "shape overflows");
        const uint64_t kCols = *kk, nw = qz->info.shape[1];
        const uint32_t mask = (1u << *bits) - 1;
        const Part pq = part(qw), pz = part(*qz), ps = part(*sc);
        std::vector<uint32_t> gidx(kCols);
        if (gx) {
            const Part pg = part(*gx);
            for (uint64_t i = 0; i < kCols; ++i) {
                gidx[i] = pg.word(i);
                if (gidx[i] >= groups)
                    fail(*gx, "g_idx[" + std::to_string(i) +
                                  "] = " + std::to_string(static_cast<int32_t>(gidx[i])) +
                                  " is outside the " + std::to_string(groups) + " groups");
            }
        } else {
            if (kCols % groups != 0)
                fail(qw, "no g_idx and " + std::to_string(groups) + " groups do not divide " +
                             std::to_string(kCols));
            for (uint64_t i = 0; i < kCols; ++i)
                gidx[i] = static_cast<uint32_t>(i / (kCols / groups));
        }
        bool symmetric = true;
        for (uint64_t g = 0; g < groups && symmetric; ++g)
            for (uint64_t col = 0; col < n; ++col)
                if (((pz.word(g * nw + col / pf) >> (*bits * (col % pf))) & mask) != (mask >> 1)) {
                    symmetric = false;
                    break;
                }
        auto pw = std::make_shared<PackedWeight>();
        pw->scheme = schemeName(*bits, groups, kCols, symmetric);
        pw->layout = "GPTQ";
        const int b = *bits;
        pw->decode = [pq, pz, ps, gidx = std::move(gidx), n, kCols, nw, pf, b,
                      mask](uint64_t first, uint64_t count, float* out) {
            for (uint64_t e = first; e < first + count; ++e) {
                const uint64_t row = e / kCols, c = e % kCols, g = gidx[c];
                const uint32_t q = (pq.word((c / pf) * n + row) >> (b * (c % pf))) & mask;
                // v1 storage: the kernels add 1 to the stored zero.
                const uint32_t z = ((pz.word(g * nw + row / pf) >> (b * (row % pf))) & mask) + 1;
                out[e - first] = ps.value(g * n + row) * (static_cast<float>(q) - static_cast<float>(z));
            }
        };
        std::vector<size_t> parts{qi, zi, si};
        if (gx)
            parts.push_back(gi);
        replace(qi, base + "weight", {n, kCols}, std::move(pw), parts);
    }

    void packQuantized(size_t pi, const std::string& base)
    {
        size_t si, shi, zi = SIZE_MAX;
        const StoredTensor& pk = m_tensors[pi];
        const StoredTensor* sc = find(base + "weight_scale", &si);
        const StoredTensor* sh = find(base + "weight_shape", &shi);
        const StoredTensor* zp = find(base + "weight_zero_point", &zi);
        if (!sc || !sh)
            fail(pk, "pack-quantized weight without " + std::string(!sc ? "weight_scale" : "weight_shape"));
        expect(pk, {DType::I32}, 2);
        expect(*sc, {DType::F32, DType::BF16, DType::F16}, 2);
        expect(*sh, {DType::I64, DType::I32}, 1);
        if (sh->info.shape[0] != 2)
            fail(*sh, "weight_shape must hold 2 values, has " + std::to_string(sh->info.shape[0]));
        const Part pshape = part(*sh);
        int64_t dims[2];
        for (int i = 0; i < 2; ++i) {
            if (sh->info.dtype == DType::I64)
                std::memcpy(&dims[i], pshape.data + 8 * i, 8);
            else
                dims[i] = static_cast<int32_t>(pshape.word(i));
        }
        if (dims[0] <= 0 || dims[1] <= 0 || static_cast<uint64_t>(dims[0]) != pk.info.shape[0])
            fail(*sh, "weight_shape [" + std::to_string(dims[0]) + ", " + std::to_string(dims[1]) +
                          "] does not match weight_packed " + shapeText(pk.info.shape));
        const uint64_t n = static_cast<uint64_t>(dims[0]), k = static_cast<uint64_t>(dims[1]);
        const auto bits = bitsFor(k, pk.info.shape[1]);
        if (!bits)
            fail(pk, "cannot tell the bit width (2, 4 or 8) of weight_packed " + shapeText(pk.info.shape) +
                         " for " + std::to_string(k) + " columns");
        const uint64_t pf = 32u / static_cast<uint64_t>(*bits), groups = sc->info.shape[1];
        if (sc->info.shape[0] != n || k % groups != 0)
            fail(*sc, "weight_scale " + shapeText(sc->info.shape) + " does not fit a " + std::to_string(n) +
                          " x " + std::to_string(k) + " weight");
        std::optional<Part> pz;
        if (zp) {
            expect(*zp, {DType::I32}, 2);
            if (zp->info.shape[0] != ceilDiv(n, pf) || zp->info.shape[1] != groups)
                fail(*zp, "packed weight_zero_point " + shapeText(zp->info.shape) + " does not fit " +
                              std::to_string(n) + " rows and " + std::to_string(groups) + " groups");
            pz = part(*zp);
        }
        auto pw = std::make_shared<PackedWeight>();
        pw->scheme = schemeName(*bits, groups, k, !zp);
        pw->layout = "compressed-tensors pack-quantized";
        const Part pp = part(pk), ps = part(*sc);
        const uint64_t kw = pk.info.shape[1], groupLen = k / groups;
        const int b = *bits;
        const uint32_t mask = (1u << b) - 1, offset = 1u << (b - 1);
        pw->decode = [pp, ps, pz, kw, k, pf, b, mask, offset, groups, groupLen](uint64_t first,
                                                                                uint64_t count, float* out) {
            for (uint64_t e = first; e < first + count; ++e) {
                const uint64_t row = e / k, c = e % k, g = c / groupLen;
                const uint32_t q = (pp.word(row * kw + c / pf) >> (b * (c % pf))) & mask;
                const uint32_t z =
                    pz ? (pz->word((row / pf) * groups + g) >> (b * (row % pf))) & mask : offset;
                // Stored values are the signed codes + 2^(bits-1); the offset cancels in q - z.
                out[e - first] = ps.value(row * groups + g) * (static_cast<float>(q) - static_cast<float>(z));
            }
        };
        std::vector<size_t> parts{pi, si, shi};
        if (zp)
            parts.push_back(zi);
        replace(pi, base + "weight", {n, k}, std::move(pw), parts);
    }

    void fp8(size_t wi, const std::string& base)
    {
        size_t si;
        const StoredTensor& w = m_tensors[wi];
        const StoredTensor* sc = find(base + "weight_scale", &si);
        if (!sc || w.info.shape.size() != 2)
            return; // a plain FP8 tensor
        expect(*sc, {DType::F32, DType::BF16, DType::F16}, sc->info.shape.size());
        const uint64_t n = w.info.shape[0], k = w.info.shape[1], scales = sc->info.elements();
        if (scales != 1 && scales != n)
            fail(*sc, "weight_scale " + shapeText(sc->info.shape) + " is neither per tensor nor per row of " +
                          shapeText(w.info.shape));
        const bool perChannel = scales != 1 || n == 1;
        const Fp8Kind kind = w.info.dtype == DType::F8_E4M3 ? Fp8Kind::E4M3 : Fp8Kind::E5M2;
        auto pw = std::make_shared<PackedWeight>();
        pw->scheme = std::string(kind == Fp8Kind::E4M3 ? "FP8-E4M3" : "FP8-E5M2") + (perChannel ? "-ch" : "");
        pw->layout = "FP8 with float scale";
        const Part pwt = part(w), ps = part(*sc);
        pw->decode = [pwt, ps, k, kind, perChannel](uint64_t first, uint64_t count, float* out) {
            for (uint64_t e = first; e < first + count; ++e)
                out[e - first] =
                    fp8ToFloat(kind, static_cast<uint8_t>(pwt.data[e])) * ps.value(perChannel ? e / k : 0);
        };
        // The logical weight keeps the name: replace() must not see it as a clash.
        m_consumed.insert(wi);
        replace(wi, base + "weight", {n, k}, std::move(pw), {wi, si});
    }

    std::vector<StoredTensor>& m_tensors;
    const std::vector<std::shared_ptr<MappedFile>>& m_files;
    std::map<std::string, size_t, std::less<>> m_index;
    std::set<size_t> m_consumed;
    std::map<size_t, StoredTensor> m_replacement;
};

} // namespace

void groupPackedWeights(std::vector<StoredTensor>& tensors,
                        const std::vector<std::shared_ptr<MappedFile>>& files)
{
    Grouper(tensors, files).run();
}

} // namespace qs
