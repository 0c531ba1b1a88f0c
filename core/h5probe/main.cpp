// quantscope-h5probe: reads one HDF5 file with libhdf5 and describes it on stdout (protocol in
// core/io/hdf5_protocol.h). It runs as a separate process because libhdf5 crashes or hangs on some
// hostile files; the parent (qs::loadHdf5) limits its time, memory and output.
//
// Usage: quantscope-h5probe [--copy-to FILE --copy-limit BYTES] [--slab-bytes N] HDF5FILE
//        quantscope-h5probe --limits [--copy-to FILE --copy-limit BYTES]   (prints the limits it sets)
//
// Safety rules: the file is opened read-only; plugin filters are disabled; links are listed, never
// followed unless they are hard links inside the file; datasets with external raw storage or virtual
// layout are reported but never read, so nothing outside the file is ever touched. Datasets that cannot
// be viewed in place (compressed, chunked, compact, big-endian, unallocated) are decoded to little-endian
// into the copy file when one is given, up to --copy-limit bytes in total.

#include "core/io/hdf5handle.h"
#include "core/io/hdf5_protocol.h"

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <hdf5.h>
#include <set>
#include <sys/resource.h>
#include <string>
#include <unistd.h>
#include <vector>

namespace {

using qs::Hdf5Handle;

constexpr int kProtocolVersion = 1;
constexpr int kMaxDepth = 64;
constexpr size_t kMaxObjects = 1u << 20;
constexpr size_t kMaxAttrValues = 1u << 20;
constexpr size_t kMaxAttrBytes = 16u << 20; // escaped, it stays under the parser's 64 MB line limit
constexpr size_t kMaxNumericAttrValues = 64;
uint64_t g_slabBytes = 16u << 20; // --slab-bytes (tests use tiny slabs to cover the slab loop)

// ---- output -------------------------------------------------------------------------------------

void appendJsonString(std::string& out, const char* s, size_t n)
{
    out += '"';
    size_t i = 0;
    while (i < n) {
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
            ++i;
        } else if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
            ++i;
        } else if (c < 0x80) {
            out += static_cast<char>(c);
            ++i;
        } else {
            // Pass valid UTF-8 through, replace anything else by U+FFFD so the line stays valid JSON.
            size_t len = 0;
            uint32_t cp = 0;
            if ((c & 0xE0) == 0xC0) {
                len = 2;
                cp = c & 0x1F;
            } else if ((c & 0xF0) == 0xE0) {
                len = 3;
                cp = c & 0x0F;
            } else if ((c & 0xF8) == 0xF0) {
                len = 4;
                cp = c & 0x07;
            }
            bool ok = len > 0 && i + len <= n;
            for (size_t k = 1; ok && k < len; ++k) {
                const auto cc = static_cast<unsigned char>(s[i + k]);
                ok = (cc & 0xC0) == 0x80;
                cp = (cp << 6) | (cc & 0x3F);
            }
            if (ok)
                ok = !(len == 2 && cp < 0x80) && !(len == 3 && cp < 0x800) && !(len == 4 && cp < 0x10000) &&
                     cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
            if (ok) {
                out.append(s + i, len);
                i += len;
            } else {
                out += "\xEF\xBF\xBD";
                ++i;
            }
        }
    }
    out += '"';
}

void appendJsonString(std::string& out, const std::string& s)
{
    appendJsonString(out, s.data(), s.size());
}

void emitLine(const std::string& line)
{
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
}

std::string quoted(const std::string& s)
{
    std::string out;
    appendJsonString(out, s);
    return out;
}

void emitWarning(const std::string& message)
{
    emitLine("{\"t\":\"warning\",\"message\":" + quoted(message) + "}");
}

void emitSkip(const std::string& path, const std::string& reason)
{
    emitLine("{\"t\":\"skip\",\"path\":" + quoted(path) + ",\"reason\":" + quoted(reason) + "}");
}

[[noreturn]] void fail(const char* code, const std::string& message)
{
    emitLine(std::string("{\"t\":\"error\",\"code\":\"") + code + "\",\"message\":" + quoted(message) + "}");
    std::fflush(stdout);
    std::_Exit(1);
}

// Lowers a limit to at most `value` (never raises one the caller set lower); returns the soft limit now.
rlim_t lowerLimit(int resource, rlim_t value)
{
    struct rlimit r {};
    if (::getrlimit(resource, &r) != 0)
        return RLIM_INFINITY;
    if (r.rlim_max == RLIM_INFINITY || r.rlim_max > value)
        r.rlim_max = value;
    if (r.rlim_cur == RLIM_INFINITY || r.rlim_cur > r.rlim_max)
        r.rlim_cur = r.rlim_max;
    ::setrlimit(resource, &r);
    ::getrlimit(resource, &r);
    return r.rlim_cur;
}

// The helper limits itself as its parent limits it (hdf5_probe.cpp), so that it is limited when started
// by hand or by another program too: no core dump, bounded memory, CPU time and wall time (SIGALRM ends
// it), and a copy file no larger than the copy limit allows. Returns a "limits" record describing them.
std::string applyOwnLimits(bool copying, uint64_t copyLimit)
{
    std::string record = "{\"t\":\"limits\"";
    auto field = [&](const char* name, rlim_t v) {
        record += std::string(",\"") + name + "\":" + (v == RLIM_INFINITY ? "null" : std::to_string(v));
    };
    field("core", lowerLimit(RLIMIT_CORE, 0));
#ifdef QS_ASAN_BUILD
    field("address_space", RLIM_INFINITY); // ASan reserves terabytes of address space up front
#else
    field("address_space", lowerLimit(RLIMIT_AS, static_cast<rlim_t>(qs::h5::kProbeMemoryLimitBytes)));
#endif
    const auto seconds = static_cast<rlim_t>(qs::h5::kProbeTimeLimitSeconds);
    field("cpu_seconds", lowerLimit(RLIMIT_CPU, seconds));
    const unsigned pending = ::alarm(static_cast<unsigned>(seconds));
    if (pending != 0 && pending < seconds)
        ::alarm(pending); // an earlier, shorter alarm stays
    field("alarm_seconds", pending != 0 && pending < seconds ? pending : seconds);
    if (copying) {
        const uint64_t cap = copyLimit > UINT64_MAX - qs::h5::kProbeCopySlackBytes
                                 ? UINT64_MAX
                                 : copyLimit + qs::h5::kProbeCopySlackBytes;
        field("file_size", lowerLimit(RLIMIT_FSIZE, static_cast<rlim_t>(cap)));
    }
    return record + "}";
}

void progress(double fraction, const char* stage)
{
    std::fprintf(stderr, "progress %.4f %s\n", fraction, stage);
    std::fflush(stderr);
}

// The innermost messages of libhdf5's error stack, which name the real cause ("truncated file ...").
herr_t collectError(unsigned n, const H5E_error2_t* err, void* data)
{
    auto* out = static_cast<std::string*>(data);
    if (n < 3 && err && err->desc) {
        if (!out->empty())
            *out += "; ";
        *out += err->desc;
    }
    return 0;
}

std::string hdf5ErrorText()
{
    std::string text;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, collectError, &text);
    H5Eclear2(H5E_DEFAULT);
    return text.empty() ? std::string("libhdf5 reported an error") : text;
}

// ---- element types -------------------------------------------------------------------------------

struct TypeDesc {
    std::string name;   // protocol name or "other"
    std::string detail; // for "other": what it is
    bool bigEndian = false;
    size_t size = 0;
};

TypeDesc describeType(hid_t type)
{
    TypeDesc d;
    d.size = H5Tget_size(type);
    const H5T_class_t cls = H5Tget_class(type);
    const H5T_order_t order = H5Tget_order(type);
    d.bigEndian = order == H5T_ORDER_BE;
    if (cls == H5T_FLOAT) {
        size_t spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0;
        H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize);
        const size_t bias = H5Tget_ebias(type);
        const size_t prec = H5Tget_precision(type);
        const int off = H5Tget_offset(type);
        const bool plain = (order == H5T_ORDER_LE || order == H5T_ORDER_BE) && off == 0 &&
                           prec == d.size * 8 && spos == prec - 1 && mpos == 0 && epos == msize &&
                           esize + msize + 1 == prec && H5Tget_norm(type) == H5T_NORM_IMPLIED;
        if (plain && d.size == 2 && esize == 5 && bias == 15)
            d.name = "f16";
        else if (plain && d.size == 2 && esize == 8 && bias == 127)
            d.name = "bf16";
        else if (plain && d.size == 4 && esize == 8 && bias == 127)
            d.name = "f32";
        else if (plain && d.size == 8 && esize == 11 && bias == 1023)
            d.name = "f64";
        else {
            d.name = "other";
            d.detail = "non-IEEE floating-point type of " + std::to_string(d.size) + " bytes";
        }
        return d;
    }
    if (cls == H5T_INTEGER) {
        const bool sign = H5Tget_sign(type) == H5T_SGN_2;
        const size_t prec = H5Tget_precision(type);
        if ((order == H5T_ORDER_LE || order == H5T_ORDER_BE) && H5Tget_offset(type) == 0 &&
            prec == d.size * 8 && (d.size == 1 || d.size == 2 || d.size == 4 || d.size == 8)) {
            d.name = std::string(sign ? "i" : "u") + std::to_string(d.size * 8);
            if (d.size == 1)
                d.bigEndian = false;
        } else {
            d.name = "other";
            d.detail = "integer type with padding bits";
        }
        return d;
    }
    if (cls == H5T_ENUM && d.size == 1 && H5Tget_nmembers(type) == 2) {
        // numpy bool as h5py writes it: enum {FALSE = 0, TRUE = 1} over int8.
        int values[2] = {-1, -1};
        char* n0 = H5Tget_member_name(type, 0);
        char* n1 = H5Tget_member_name(type, 1);
        signed char v = 0;
        if (n0 && H5Tenum_valueof(type, n0, &v) >= 0)
            values[0] = v;
        if (n1 && H5Tenum_valueof(type, n1, &v) >= 0)
            values[1] = v;
        const bool isBool = n0 && n1 && std::strcmp(n0, "FALSE") == 0 && std::strcmp(n1, "TRUE") == 0 &&
                            values[0] == 0 && values[1] == 1;
        H5free_memory(n0);
        H5free_memory(n1);
        d.bigEndian = false;
        if (isBool) {
            d.name = "bool";
            return d;
        }
    }
    d.name = "other";
    switch (cls) {
    case H5T_STRING:
        d.detail = "string";
        break;
    case H5T_COMPOUND:
        d.detail = "compound";
        break;
    case H5T_ENUM:
        d.detail = "enum";
        break;
    case H5T_VLEN:
        d.detail = "variable-length";
        break;
    case H5T_ARRAY:
        d.detail = "array type";
        break;
    case H5T_OPAQUE:
        d.detail = "opaque";
        break;
    case H5T_REFERENCE:
        d.detail = "reference";
        break;
    case H5T_BITFIELD:
        d.detail = "bitfield";
        break;
    case H5T_TIME:
        d.detail = "time";
        break;
    default:
        d.detail = "unknown type class";
        break;
    }
    return d;
}

// ---- walking -------------------------------------------------------------------------------------

struct DatasetRec {
    std::string path;
    std::vector<uint64_t> shape;
    TypeDesc type;
    std::string layout;
    std::vector<std::string> filters;
    std::string storage = "none";
    uint64_t offset = 0;
    uint64_t bytes = 0;
    std::string reason;
    bool needsCopy = false;
};

struct Walker {
    hid_t file = -1;
    hid_t lapl = -1;
    std::set<haddr_t> visited;
    std::vector<DatasetRec> datasets;
    size_t objects = 0;
    bool limitHit = false;
};

std::string childPath(const std::string& parent, const char* name)
{
    return parent == "/" ? "/" + std::string(name) : parent + "/" + name;
}

herr_t attrCallback(hid_t obj, const char* name, const H5A_info_t*, void* data)
{
    const std::string& objPath = *static_cast<const std::string*>(data);
    Hdf5Handle attr(H5Aopen(obj, name, H5P_DEFAULT), H5Aclose);
    if (!attr.valid()) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    Hdf5Handle type(H5Aget_type(attr.get()), H5Tclose);
    Hdf5Handle space(H5Aget_space(attr.get()), H5Sclose);
    if (!type.valid() || !space.valid()) {
        H5Eclear2(H5E_DEFAULT);
        return 0;
    }
    const hssize_t npoints = H5Sget_simple_extent_npoints(space.get());
    if (npoints < 0 || static_cast<size_t>(npoints) > kMaxAttrValues) {
        emitWarning("attribute " + objPath + "@" + name + ": too many values, ignored");
        return 0;
    }
    const size_t n = static_cast<size_t>(npoints);
    std::string line = "{\"t\":\"attr\",\"obj\":" + quoted(objPath) + ",\"name\":" + quoted(name);
    const H5T_class_t cls = H5Tget_class(type.get());
    if (cls == H5T_STRING) {
        line += ",\"kind\":\"str\",\"values\":[";
        const htri_t isVar = H5Tis_variable_str(type.get());
        if (isVar > 0) {
            Hdf5Handle mem(H5Tcopy(H5T_C_S1), H5Tclose);
            H5Tset_size(mem.get(), H5T_VARIABLE);
            H5Tset_cset(mem.get(), H5Tget_cset(type.get()));
            std::vector<char*> buf(n, nullptr);
            if (n && H5Aread(attr.get(), mem.get(), buf.data()) < 0) {
                H5Eclear2(H5E_DEFAULT);
                emitWarning("attribute " + objPath + "@" + name + ": cannot be read");
                return 0;
            }
            size_t total = 0;
            for (size_t i = 0; i < n; ++i) {
                const size_t len = buf[i] ? std::strlen(buf[i]) : 0;
                total += len;
                if (total > kMaxAttrBytes)
                    break;
                if (i)
                    line += ',';
                appendJsonString(line, buf[i] ? buf[i] : "", len);
            }
            if (n)
                H5Dvlen_reclaim(mem.get(), space.get(), H5P_DEFAULT, buf.data());
            if (total > kMaxAttrBytes) {
                emitWarning("attribute " + objPath + "@" + name + ": larger than 16 MB, ignored");
                return 0;
            }
        } else {
            const size_t size = H5Tget_size(type.get());
            if (size == 0 || (n && size > kMaxAttrBytes / n)) {
                emitWarning("attribute " + objPath + "@" + name + ": larger than 16 MB, ignored");
                return 0;
            }
            Hdf5Handle mem(H5Tcopy(type.get()), H5Tclose);
            std::vector<char> buf(size * n + 1, 0);
            if (n && H5Aread(attr.get(), mem.get(), buf.data()) < 0) {
                H5Eclear2(H5E_DEFAULT);
                emitWarning("attribute " + objPath + "@" + name + ": cannot be read");
                return 0;
            }
            const bool spacePad = H5Tget_strpad(type.get()) == H5T_STR_SPACEPAD;
            for (size_t i = 0; i < n; ++i) {
                const char* s = buf.data() + i * size;
                size_t len = strnlen(s, size);
                while (spacePad && len > 0 && s[len - 1] == ' ')
                    --len;
                if (i)
                    line += ',';
                appendJsonString(line, s, len);
            }
        }
        line += "]}";
        if (line.size() > (60u << 20)) { // the parser drops lines over 64 MB
            emitWarning("attribute " + objPath + "@" + name + ": larger than 60 MB once escaped, ignored");
            return 0;
        }
        emitLine(line);
        return 0;
    }
    if ((cls == H5T_INTEGER || cls == H5T_FLOAT) && n <= kMaxNumericAttrValues) {
        std::vector<double> values(n);
        if (cls == H5T_INTEGER) {
            std::vector<long long> iv(n);
            if (n && H5Aread(attr.get(), H5T_NATIVE_LLONG, iv.data()) < 0) {
                H5Eclear2(H5E_DEFAULT);
                return 0;
            }
            line += ",\"kind\":\"int\",\"values\":[";
            for (size_t i = 0; i < n; ++i)
                line += (i ? "," : "") + std::to_string(iv[i]);
        } else {
            if (n && H5Aread(attr.get(), H5T_NATIVE_DOUBLE, values.data()) < 0) {
                H5Eclear2(H5E_DEFAULT);
                return 0;
            }
            line += ",\"kind\":\"float\",\"values\":[";
            for (size_t i = 0; i < n; ++i) {
                char buf[40];
                if (values[i] != values[i] || values[i] > 1.7e308 || values[i] < -1.7e308)
                    std::snprintf(buf, sizeof buf, "null");
                else
                    std::snprintf(buf, sizeof buf, "%.17g", values[i]);
                line += (i ? "," : "") + std::string(buf);
            }
        }
        line += "]}";
        emitLine(line);
    }
    return 0;
}

void emitAttributes(hid_t obj, const std::string& path)
{
    hsize_t idx = 0;
    std::string p = path;
    if (H5Aiterate2(obj, H5_INDEX_NAME, H5_ITER_INC, &idx, attrCallback, &p) < 0) {
        H5Eclear2(H5E_DEFAULT);
        emitWarning("attributes of " + path + " cannot be listed");
    }
}

const char* filterName(H5Z_filter_t id)
{
    switch (id) {
    case H5Z_FILTER_DEFLATE:
        return "deflate";
    case H5Z_FILTER_SHUFFLE:
        return "shuffle";
    case H5Z_FILTER_FLETCHER32:
        return "fletcher32";
    case H5Z_FILTER_SZIP:
        return "szip";
    case H5Z_FILTER_NBIT:
        return "nbit";
    case H5Z_FILTER_SCALEOFFSET:
        return "scaleoffset";
    case 32000:
        return "lzf";
    case 32001:
        return "blosc";
    case 32004:
        return "lz4";
    case 32008:
        return "bitshuffle";
    case 32015:
        return "zstd";
    default:
        return nullptr;
    }
}

void describeDataset(Walker& w, hid_t dset, const std::string& path)
{
    DatasetRec rec;
    rec.path = path;
    Hdf5Handle space(H5Dget_space(dset), H5Sclose);
    Hdf5Handle type(H5Dget_type(dset), H5Tclose);
    Hdf5Handle dcpl(H5Dget_create_plist(dset), H5Pclose);
    if (!space.valid() || !type.valid() || !dcpl.valid()) {
        H5Eclear2(H5E_DEFAULT);
        emitSkip(path, "dataset header cannot be read: " + hdf5ErrorText());
        return;
    }
    rec.type = describeType(type.get());
    const H5S_class_t sclass = H5Sget_simple_extent_type(space.get());
    const int rank = H5Sget_simple_extent_ndims(space.get());
    if (sclass == H5S_NULL || rank < 0 || rank > 32) {
        emitSkip(path, sclass == H5S_NULL ? "empty (null) dataspace" : "unsupported dataspace");
        return;
    }
    std::vector<hsize_t> dims(static_cast<size_t>(rank));
    if (rank > 0)
        H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
    rec.shape.assign(dims.begin(), dims.end());

    const H5D_layout_t layout = H5Pget_layout(dcpl.get());
    rec.layout = layout == H5D_CONTIGUOUS ? "contiguous"
                 : layout == H5D_COMPACT  ? "compact"
                 : layout == H5D_CHUNKED  ? "chunked"
                 : layout == H5D_VIRTUAL  ? "virtual"
                                          : "unknown";
    const int nfilters = H5Pget_nfilters(dcpl.get());
    bool filtersAvailable = true;
    std::string missingFilter;
    for (int i = 0; i < nfilters && i < 32; ++i) {
        unsigned flags = 0;
        size_t nelmts = 0;
        char name[64] = {0};
        const H5Z_filter_t id = H5Pget_filter2(dcpl.get(), static_cast<unsigned>(i), &flags, &nelmts, nullptr,
                                               sizeof name, name, nullptr);
        const char* known = filterName(id);
        std::string label = known ? known : "filter " + std::to_string(id);
        rec.filters.push_back(label);
        if (H5Zfilter_avail(id) <= 0) {
            filtersAvailable = false;
            missingFilter = label;
        }
    }
    H5Eclear2(H5E_DEFAULT);
    const int external = H5Pget_external_count(dcpl.get());

    if (rec.type.name == "other")
        rec.reason = "not a numeric dataset (" + rec.type.detail + ")";
    else if (layout == H5D_VIRTUAL)
        rec.reason = "virtual dataset (maps data from other datasets or files; not read)";
    else if (external > 0)
        rec.reason = "raw data is stored in external files outside this file (not read)";
    else if (!filtersAvailable)
        rec.reason = "compressed with " + missingFilter +
                     ", which libhdf5 does not provide (filter plugins are disabled for safety)";
    else if (layout != H5D_CONTIGUOUS && layout != H5D_COMPACT && layout != H5D_CHUNKED)
        rec.reason = "unknown storage layout";
    uint64_t elements = 1;
    bool overflow = false;
    for (auto d : rec.shape)
        overflow = overflow || __builtin_mul_overflow(elements, d, &elements);
    uint64_t bytes = 0;
    overflow = overflow || __builtin_mul_overflow(elements, static_cast<uint64_t>(rec.type.size), &bytes);
    if (rec.reason.empty() && overflow)
        rec.reason = "shape overflows";
    if (!rec.reason.empty()) {
        w.datasets.push_back(std::move(rec));
        return;
    }
    rec.bytes = bytes;
    if (layout == H5D_CONTIGUOUS && nfilters == 0 && !rec.type.bigEndian) {
        const haddr_t addr = H5Dget_offset(dset);
        const hsize_t stored = H5Dget_storage_size(dset);
        H5Eclear2(H5E_DEFAULT);
        if (addr != HADDR_UNDEF && stored == bytes) {
            rec.storage = "direct";
            rec.offset = addr;
            w.datasets.push_back(std::move(rec));
            return;
        }
    }
    rec.needsCopy = true;
    w.datasets.push_back(std::move(rec));
}

void walkGroup(Walker& w, hid_t group, const std::string& path, int depth);

struct LinkContext {
    Walker* w;
    const std::string* path;
    int depth;
};

herr_t linkCallback(hid_t group, const char* name, const H5L_info_t* info, void* data)
{
    auto* ctx = static_cast<LinkContext*>(data);
    Walker& w = *ctx->w;
    const std::string path = childPath(*ctx->path, name);
    if (++w.objects > kMaxObjects) {
        w.limitHit = true;
        return 1; // stop
    }
    if (w.objects % 256 == 0)
        progress(0.0, "reading structure");
    if (info->type == H5L_TYPE_EXTERNAL) {
        std::string target = "another file";
        if (info->u.val_size > 0 && info->u.val_size < 65536) {
            std::vector<char> buf(info->u.val_size + 1, 0);
            const char* file = nullptr;
            const char* obj = nullptr;
            unsigned flags = 0;
            if (H5Lget_val(group, name, buf.data(), info->u.val_size, H5P_DEFAULT) >= 0 &&
                H5Lunpack_elink_val(buf.data(), info->u.val_size, &flags, &file, &obj) >= 0 && file && obj)
                target = std::string(file) + ":" + obj;
            H5Eclear2(H5E_DEFAULT);
        }
        emitSkip(path, "external link to " + target + " (links that leave the file are not followed)");
        return 0;
    }
    if (info->type == H5L_TYPE_SOFT) {
        emitSkip(path, "soft link (not followed; its target is listed under its own path)");
        return 0;
    }
    if (info->type != H5L_TYPE_HARD) {
        emitSkip(path, "user-defined link type (not followed)");
        return 0;
    }
    if (!w.visited.insert(info->u.address).second) {
        emitSkip(path, "second hard link to an object already listed");
        return 0;
    }
    Hdf5Handle obj(H5Oopen(group, name, w.lapl), H5Oclose);
    if (!obj.valid()) {
        emitSkip(path, "cannot be opened: " + hdf5ErrorText());
        return 0;
    }
    const H5I_type_t kind = H5Iget_type(obj.get());
    if (kind == H5I_GROUP) {
        if (ctx->depth >= kMaxDepth) {
            emitSkip(path, "groups nested deeper than 64 levels");
            return 0;
        }
        walkGroup(w, obj.get(), path, ctx->depth + 1);
        return w.limitHit ? 1 : 0;
    }
    if (kind == H5I_DATASET)
        describeDataset(w, obj.get(), path);
    return 0;
}

void walkGroup(Walker& w, hid_t group, const std::string& path, int depth)
{
    emitLine("{\"t\":\"group\",\"path\":" + quoted(path) + "}");
    emitAttributes(group, path);
    LinkContext ctx{&w, &path, depth};
    hsize_t idx = 0;
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, &idx, linkCallback, &ctx) < 0) {
        const std::string err = hdf5ErrorText();
        emitWarning("group " + path + " cannot be fully listed: " + err);
    }
}

// ---- copying -------------------------------------------------------------------------------------

// Reads a dataset through libhdf5 (decompressing, byte-swapping, filling unallocated space) and writes
// it little-endian to fd at offset. Works in slabs so memory stays bounded whatever the dataset size.
struct CopyProgress {
    uint64_t done = 0;  // bytes of earlier datasets
    uint64_t total = 0; // bytes of all datasets to decode
};

bool copyDataset(hid_t file, DatasetRec& rec, int fd, uint64_t offset, const CopyProgress& overall,
                 std::string& error)
{
    Hdf5Handle dapl(H5Pcreate(H5P_DATASET_ACCESS), H5Pclose);
    H5Pset_chunk_cache(dapl.get(), 12421, 64u << 20, 1.0);
    Hdf5Handle dset(H5Dopen2(file, rec.path.c_str(), dapl.get()), H5Dclose);
    if (!dset.valid()) {
        error = "cannot be reopened: " + hdf5ErrorText();
        return false;
    }
    Hdf5Handle ftype(H5Dget_type(dset.get()), H5Tclose);
    Hdf5Handle mtype(H5Tcopy(ftype.get()), H5Tclose);
    if (!mtype.valid() || (rec.type.size > 1 && H5Tset_order(mtype.get(), H5T_ORDER_LE) < 0)) {
        error = "no little-endian memory type: " + hdf5ErrorText();
        return false;
    }
    const size_t rank = rec.shape.size();
    const uint64_t esize = rec.type.size;
    if (rec.bytes == 0)
        return true;
    if (rank == 0) {
        std::vector<char> buf(esize);
        if (H5Dread(dset.get(), mtype.get(), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf.data()) < 0) {
            error = "cannot be read: " + hdf5ErrorText();
            return false;
        }
        if (pwrite(fd, buf.data(), esize, static_cast<off_t>(offset)) != static_cast<ssize_t>(esize)) {
            error = std::string("cannot write the copy: ") + std::strerror(errno);
            return false;
        }
        return true;
    }
    // Split dimension k: everything after k fits in one slab; dimension k is read in runs of `run`.
    size_t k = rank - 1;
    uint64_t inner = esize; // bytes of one index step along dimension k
    while (k > 0 && inner * rec.shape[k] <= g_slabBytes) {
        inner *= rec.shape[k];
        --k;
    }
    const uint64_t run = std::max<uint64_t>(1, std::min<uint64_t>(rec.shape[k], g_slabBytes / inner));
    std::vector<char> buf(run * inner);
    Hdf5Handle fspace(H5Dget_space(dset.get()), H5Sclose);
    std::vector<hsize_t> start(rank, 0), count(rank, 1);
    for (size_t d = k + 1; d < rank; ++d)
        count[d] = rec.shape[d];
    uint64_t written = 0;
    for (;;) {
        count[k] = std::min<uint64_t>(run, rec.shape[k] - start[k]);
        const uint64_t n = count[k] * inner;
        Hdf5Handle mspace(H5Screate_simple(static_cast<int>(rank), count.data(), nullptr), H5Sclose);
        if (H5Sselect_hyperslab(fspace.get(), H5S_SELECT_SET, start.data(), nullptr, count.data(), nullptr) <
                0 ||
            H5Dread(dset.get(), mtype.get(), mspace.get(), fspace.get(), H5P_DEFAULT, buf.data()) < 0) {
            error = "cannot be read: " + hdf5ErrorText();
            return false;
        }
        size_t done = 0;
        while (done < n) {
            const ssize_t r =
                pwrite(fd, buf.data() + done, n - done, static_cast<off_t>(offset + written + done));
            if (r <= 0) {
                error = std::string("cannot write the copy: ") + std::strerror(errno);
                return false;
            }
            done += static_cast<size_t>(r);
        }
        written += n;
        progress(static_cast<double>(overall.done + written) /
                     static_cast<double>(std::max<uint64_t>(1, overall.total)),
                 "decoding compressed data");
        // Advance the multi-index: dimension k by count[k], carrying into the outer dimensions.
        start[k] += count[k];
        size_t d = k;
        while (start[d] >= rec.shape[d]) {
            if (d == 0)
                return true;
            start[d] = 0;
            --d;
            start[d] += 1;
        }
    }
}

std::string shapeJson(const std::vector<uint64_t>& shape)
{
    std::string s = "[";
    for (size_t i = 0; i < shape.size(); ++i)
        s += (i ? "," : "") + std::to_string(shape[i]);
    return s + "]";
}

void emitDataset(const DatasetRec& r)
{
    std::string line = "{\"t\":\"dataset\",\"path\":" + quoted(r.path) + ",\"shape\":" + shapeJson(r.shape) +
                       ",\"type\":" + quoted(r.type.name) + ",\"order\":\"" +
                       (r.type.bigEndian ? "be" : "le") + "\",\"layout\":" + quoted(r.layout) +
                       ",\"filters\":[";
    for (size_t i = 0; i < r.filters.size(); ++i)
        line += (i ? "," : "") + quoted(r.filters[i]);
    line += "],\"storage\":" + quoted(r.storage);
    if (r.storage != "none")
        line += ",\"offset\":" + std::to_string(r.offset) + ",\"bytes\":" + std::to_string(r.bytes);
    else
        line += ",\"reason\":" + quoted(r.reason);
    emitLine(line + "}");
}

herr_t denyExternalLink(const char*, const char*, const char*, const char*, unsigned*, hid_t, void*)
{
    return -1;
}

} // namespace

int main(int argc, char** argv)
{
    std::string copyTo;
    uint64_t copyLimit = 0;
    std::string path;
    bool showLimits = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--limits")
            showLimits = true;
        else if (a == "--copy-to" && i + 1 < argc)
            copyTo = argv[++i];
        else if (a == "--copy-limit" && i + 1 < argc)
            copyLimit = std::strtoull(argv[++i], nullptr, 10);
        else if (a == "--slab-bytes" && i + 1 < argc)
            g_slabBytes = std::max<uint64_t>(1, std::strtoull(argv[++i], nullptr, 10));
        else if (path.empty() && !a.empty() && a[0] != '-')
            path = a;
        else
            fail("usage", "usage: quantscope-h5probe [--copy-to FILE --copy-limit BYTES] HDF5FILE");
    }
    const std::string limits = applyOwnLimits(!copyTo.empty(), copyLimit);
    if (showLimits) { // prints the limits it runs under and stops
        emitLine(limits);
        return 0;
    }
    if (path.empty())
        fail("usage", "usage: quantscope-h5probe [--copy-to FILE --copy-limit BYTES] HDF5FILE");

    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    H5PLset_loading_state(0);
    unsigned major = 0, minor = 0, rel = 0;
    H5get_libversion(&major, &minor, &rel);
    emitLine("{\"t\":\"probe\",\"v\":" + std::to_string(kProtocolVersion) + ",\"lib\":\"" +
             std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(rel) + "\"}");

    const htri_t isHdf5 = H5Fis_hdf5(path.c_str());
    if (isHdf5 == 0)
        fail("not_hdf5", "no HDF5 signature found");
    if (isHdf5 < 0) {
        const std::string err = hdf5ErrorText();
        fail(access(path.c_str(), R_OK) == 0 ? "open_failed" : "io", err);
    }

    Hdf5Handle fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    H5Pset_fclose_degree(fapl.get(), H5F_CLOSE_STRONG);
    Hdf5Handle lapl(H5Pcreate(H5P_LINK_ACCESS), H5Pclose);
    H5Pset_elink_cb(lapl.get(), denyExternalLink, nullptr);
    H5Pset_nlinks(lapl.get(), 8);

    Hdf5Handle file(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get()), H5Fclose);
    if (!file.valid()) {
        const std::string err = hdf5ErrorText();
        fail(err.find("truncated") != std::string::npos ? "truncated" : "open_failed", err);
    }
    Hdf5Handle root(H5Gopen2(file.get(), "/", H5P_DEFAULT), H5Gclose);
    if (!root.valid())
        fail("open_failed", "root group cannot be opened: " + hdf5ErrorText());

    Walker w;
    w.file = file.get();
    w.lapl = lapl.get();
    walkGroup(w, root.get(), "/", 0);
    if (w.limitHit)
        emitWarning("more than " + std::to_string(kMaxObjects) +
                    " objects; the rest of the file was not listed");

    int fd = -1;
    if (!copyTo.empty())
        fd = ::open(copyTo.c_str(), O_WRONLY | O_CLOEXEC);
    uint64_t copyEnd = 0;
    CopyProgress overall;
    for (const auto& r : w.datasets)
        if (r.needsCopy && r.bytes <= copyLimit)
            overall.total += r.bytes;
    for (auto& r : w.datasets) {
        if (!r.needsCopy)
            continue;
        r.needsCopy = false;
        const uint64_t offset = (copyEnd + 63) / 64 * 64;
        if (fd < 0) {
            r.reason = "needs decoding (stored " + std::string(r.type.bigEndian ? "big-endian " : "") +
                       r.layout + (r.filters.empty() ? "" : " with filters") +
                       ") but no writable temporary file was available";
        } else if (r.bytes > copyLimit || offset > copyLimit - r.bytes) {
            r.reason = "decoded size " + std::to_string(r.bytes) +
                       " bytes exceeds the copy limit for this file (" + std::to_string(copyLimit) +
                       " bytes)";
        } else {
            std::string error;
            if (copyDataset(file.get(), r, fd, offset, overall, error)) {
                r.storage = "copy";
                r.offset = offset;
                copyEnd = offset + r.bytes;
            } else {
                r.reason = error;
            }
        }
        overall.done += r.bytes;
    }
    if (fd >= 0)
        ::close(fd);
    for (const auto& r : w.datasets)
        emitDataset(r);
    emitLine("{\"t\":\"end\",\"objects\":" + std::to_string(w.objects) + "}");
    std::fflush(stdout);
    return 0;
}
