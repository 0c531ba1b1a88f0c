#pragma once
// A small GGUF writer for tests: builds valid files and, through its overrides and the recorded layout,
// precisely corrupted ones. Independent of the loader (it shares no code with core/io/gguf.cpp).

#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

namespace qstest {

class GgufBuilder {
public:
    enum Type : uint32_t {
        U8 = 0,
        I8 = 1,
        U16 = 2,
        I16 = 3,
        U32 = 4,
        I32 = 5,
        F32 = 6,
        Bool = 7,
        String = 8,
        Array = 9,
        U64 = 10,
        I64 = 11,
        F64 = 12
    };

    // Little-endian scalar encodings.
    template <typename T> static std::string le(T v)
    {
        std::string s(sizeof(T), '\0');
        std::memcpy(s.data(), &v, sizeof(T));
        return s;
    }
    static std::string str(const std::string& s) { return le<uint64_t>(s.size()) + s; }

    // Typed values: the value type id followed by the payload.
    static std::string vU8(uint8_t v) { return le<uint32_t>(U8) + le(v); }
    static std::string vI8(int8_t v) { return le<uint32_t>(I8) + le(v); }
    static std::string vU16(uint16_t v) { return le<uint32_t>(U16) + le(v); }
    static std::string vI16(int16_t v) { return le<uint32_t>(I16) + le(v); }
    static std::string vU32(uint32_t v) { return le<uint32_t>(U32) + le(v); }
    static std::string vI32(int32_t v) { return le<uint32_t>(I32) + le(v); }
    static std::string vU64(uint64_t v) { return le<uint32_t>(U64) + le(v); }
    static std::string vI64(int64_t v) { return le<uint32_t>(I64) + le(v); }
    static std::string vF32(float v) { return le<uint32_t>(F32) + le(v); }
    static std::string vF64(double v) { return le<uint32_t>(F64) + le(v); }
    static std::string vBool(bool v) { return le<uint32_t>(Bool) + le<uint8_t>(v ? 1 : 0); }
    static std::string vStr(const std::string& v) { return le<uint32_t>(String) + str(v); }
    // An array whose items are already encoded payloads (without their type ids).
    static std::string vArray(uint32_t itemType, const std::vector<std::string>& payloads)
    {
        std::string s = le<uint32_t>(Array) + le<uint32_t>(itemType) + le<uint64_t>(payloads.size());
        for (const auto& p : payloads)
            s += p;
        return s;
    }
    static std::string vStrings(const std::vector<std::string>& items)
    {
        std::vector<std::string> p;
        for (const auto& i : items)
            p.push_back(str(i));
        return vArray(String, p);
    }
    // Payload (no type id) of an array value, for nesting.
    static std::string arrayPayload(uint32_t itemType, const std::vector<std::string>& payloads)
    {
        return vArray(itemType, payloads).substr(4);
    }

    struct Kv {
        std::string key;
        std::string value; // type id + payload
    };
    struct Tensor {
        std::string name;
        std::vector<uint64_t> ne;       // ggml order: ne[0] is the row length
        uint32_t type = 0;              // ggml type id
        std::string data;               // stored bytes
        std::optional<uint64_t> offset; // relative to the data section; default: packed and aligned
        std::optional<uint32_t> nDims;  // default: ne.size()
    };
    // Where things ended up in the last build(), for asserting error offsets.
    struct Layout {
        uint64_t version = 4, tensorCount = 8, kvCount = 16;
        std::vector<uint64_t> kvStart, kvType, kvValue;
        std::vector<uint64_t> tensorStart, tensorNDims, tensorNe, tensorType, tensorOffset;
        uint64_t headerEnd = 0, dataStart = 0, size = 0;
    };

    std::string magic = "GGUF";
    uint32_t version = 3;
    std::optional<uint64_t> tensorCount; // default: tensors.size()
    std::optional<uint64_t> kvCount;     // default: kvs.size()
    uint64_t alignment = 32;             // layout alignment (write general.alignment yourself to change it)
    bool withData = true;                // false: stop at the end of the tensor infos
    std::vector<Kv> kvs;
    std::vector<Tensor> tensors;
    Layout layout;

    GgufBuilder& kv(std::string key, std::string value)
    {
        kvs.push_back({std::move(key), std::move(value)});
        return *this;
    }
    // A tensor with deterministic contents of the right size for its type (bytesPerBlock per blockElems).
    GgufBuilder& tensor(std::string name, std::vector<uint64_t> ne, uint32_t type, uint64_t bytes)
    {
        Tensor t{std::move(name), std::move(ne), type, std::string(), std::nullopt, std::nullopt};
        t.data.resize(bytes);
        for (uint64_t i = 0; i < bytes; ++i)
            t.data[i] = static_cast<char>((i * 131 + tensors.size() * 7) & 0xFF);
        tensors.push_back(std::move(t));
        return *this;
    }

    // An F16 matrix of ne0 x ne1 random values of moderate magnitude (deterministic for a seed): a large
    // tensor that takes real work to quantize (tests that cancel mid-run).
    GgufBuilder& randomF16(std::string name, uint64_t ne0, uint64_t ne1, uint32_t seed)
    {
        std::mt19937 rng(seed);
        std::string data(ne0 * ne1 * 2, '\0');
        for (size_t k = 0; k < data.size() / 2; ++k) {
            const uint16_t h = static_cast<uint16_t>(0x2000 + (rng() & 0x1FFF) + ((rng() & 1) << 15));
            std::memcpy(data.data() + 2 * k, &h, 2);
        }
        tensors.push_back({std::move(name), {ne0, ne1}, 1, std::move(data), std::nullopt, std::nullopt});
        return *this;
    }

    std::string build()
    {
        layout = Layout{};
        std::string s = magic + le<uint32_t>(version) + le<uint64_t>(tensorCount.value_or(tensors.size())) +
                        le<uint64_t>(kvCount.value_or(kvs.size()));
        for (const auto& k : kvs) {
            layout.kvStart.push_back(s.size());
            s += str(k.key);
            layout.kvType.push_back(s.size());
            layout.kvValue.push_back(s.size() + 4);
            s += k.value;
        }
        std::vector<uint64_t> offsets;
        uint64_t next = 0;
        for (const auto& t : tensors) {
            const uint64_t off = t.offset.value_or(next);
            offsets.push_back(off);
            if (!t.offset)
                next = (off + t.data.size() + alignment - 1) / alignment * alignment;
        }
        for (size_t i = 0; i < tensors.size(); ++i) {
            const auto& t = tensors[i];
            layout.tensorStart.push_back(s.size());
            s += str(t.name);
            layout.tensorNDims.push_back(s.size());
            s += le<uint32_t>(t.nDims.value_or(static_cast<uint32_t>(t.ne.size())));
            layout.tensorNe.push_back(s.size());
            for (auto n : t.ne)
                s += le<uint64_t>(n);
            layout.tensorType.push_back(s.size());
            s += le<uint32_t>(t.type);
            layout.tensorOffset.push_back(s.size());
            s += le<uint64_t>(offsets[i]);
        }
        layout.headerEnd = s.size();
        layout.dataStart = (s.size() + alignment - 1) / alignment * alignment;
        if (!tensors.empty() && withData) {
            uint64_t end = layout.dataStart;
            for (size_t i = 0; i < tensors.size(); ++i)
                end = std::max<uint64_t>(end, layout.dataStart + offsets[i] + tensors[i].data.size());
            std::string data(end - layout.dataStart, '\0');
            for (size_t i = 0; i < tensors.size(); ++i)
                if (offsets[i] + tensors[i].data.size() <= data.size())
                    data.replace(offsets[i], tensors[i].data.size(), tensors[i].data);
            s.resize(layout.dataStart, '\0');
            s += data;
        }
        layout.size = s.size();
        return s;
    }
};

} // namespace qstest
