#include "core/text/tokenizer.h"

#include "core/io/jsonscan.h"
#include "core/model/model.h"
#include "core/util/error.h"
#include "core/util/fileio.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <algorithm>
#include <cstdio>
#include <functional>
#include <pcre2.h>
#include <queue>

namespace qs {

const char* const kGpt2SplitPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2SplitPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

namespace {

constexpr size_t kMaxPatternLength = 8192;
constexpr size_t kMaxVocab = 10'000'000;
constexpr size_t kMaxTokenBytes = 1 << 16;
constexpr size_t kMaxTokenizerJsonBytes = 512u << 20;
constexpr uint32_t kMatchLimit = 10'000'000;
constexpr uint32_t kDepthLimit = 10'000;

[[noreturn]] void bad(const std::string& message)
{
    throw Error(ErrorCode::BadValue, message);
}

// Length of the UTF-8 sequence starting at s[i] (1 for an invalid lead byte).
size_t utf8Length(std::string_view s, size_t i)
{
    const auto c = static_cast<unsigned char>(s[i]);
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1;
    return std::min(n, s.size() - i);
}

// GPT-2's byte <-> printable character table: printable Latin-1 bytes map to themselves, the rest to
// U+0100 upwards, so that every byte sequence is a string without spaces or control characters.
struct ByteTable {
    std::string encode[256];
    std::unordered_map<std::string, uint8_t> decode;
    ByteTable()
    {
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
            const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
            std::string u;
            if (cp < 0x80)
                u.push_back(char(cp));
            else {
                u.push_back(char(0xC0 | (cp >> 6)));
                u.push_back(char(0x80 | (cp & 0x3F)));
            }
            encode[b] = u;
            decode[u] = uint8_t(b);
        }
    }
};
const ByteTable& byteTable()
{
    static const ByteTable table;
    return table;
}

// Merges adjacent symbols by priority (highest first, leftmost on ties) until no pair merges: the engine
// of both SentencePiece (priority = score of the merged token) and BPE (priority = -merge rank).
template <typename Priority>
std::vector<std::string_view> mergeSymbols(std::string_view text, Priority priority)
{
    struct Symbol {
        size_t start, length;
        int prev, next;
    };
    std::vector<Symbol> sym;
    for (size_t i = 0; i < text.size();) {
        const size_t n = utf8Length(text, i);
        sym.push_back({i, n, int(sym.size()) - 1, int(sym.size()) + 1});
        i += n;
    }
    if (sym.empty())
        return {};
    sym.back().next = -1;
    struct Bigram {
        double priority;
        int left, right;
        size_t length;
        bool operator<(const Bigram& o) const
        {
            return priority < o.priority || (priority == o.priority && left > o.left);
        }
    };
    std::priority_queue<Bigram> queue;
    auto tryAdd = [&](int l, int r) {
        if (l < 0 || r < 0)
            return;
        const std::string_view merged = text.substr(sym[l].start, sym[l].length + sym[r].length);
        if (auto p = priority(text.substr(sym[l].start, sym[l].length),
                              text.substr(sym[r].start, sym[r].length), merged))
            queue.push({*p, l, r, merged.size()});
    };
    for (int i = 0; i + 1 < int(sym.size()); ++i)
        tryAdd(i, i + 1);
    while (!queue.empty()) {
        const Bigram b = queue.top();
        queue.pop();
        Symbol& l = sym[b.left];
        if (l.length == 0 || l.next != b.right || sym[b.right].length == 0 ||
            l.length + sym[b.right].length != b.length)
            continue; // one side changed since the pair was queued
        Symbol& r = sym[b.right];
        l.length += r.length;
        r.length = 0;
        l.next = r.next;
        if (r.next >= 0)
            sym[r.next].prev = b.left;
        tryAdd(l.prev, b.left);
        tryAdd(b.left, l.next);
    }
    std::vector<std::string_view> out;
    for (int i = 0; i >= 0; i = sym[i].next)
        out.push_back(text.substr(sym[i].start, sym[i].length));
    return out;
}

const MetaValue* meta(const Model& model, const std::string& key)
{
    auto it = model.metadata().find(key);
    return it == model.metadata().end() ? nullptr : &it->second;
}

std::optional<int64_t> metaInt(const Model& model, const std::string& key)
{
    const MetaValue* v = meta(model, key);
    if (!v)
        return std::nullopt;
    if (const auto* i = std::get_if<int64_t>(&v->value))
        return *i;
    if (const auto* u = std::get_if<uint64_t>(&v->value); u && *u <= uint64_t(INT64_MAX))
        return int64_t(*u);
    return std::nullopt;
}

std::optional<bool> metaBool(const Model& model, const std::string& key)
{
    const MetaValue* v = meta(model, key);
    if (const auto* b = v ? std::get_if<bool>(&v->value) : nullptr)
        return *b;
    return std::nullopt;
}

// An array of any kind (strings, or packed numbers); items are read with MetaValue::item.
const MetaValue& metaArray(const Model& model, const std::string& key, size_t expected)
{
    const MetaValue* v = meta(model, key);
    if (!v || !v->isArray())
        bad(model.path().string() + ": " + key + " is missing or not an array");
    if (expected != SIZE_MAX && v->arraySize() != expected)
        bad(model.path().string() + ": " + key + " has " + std::to_string(v->arraySize()) +
            " entries, expected " + std::to_string(expected));
    return *v;
}

// The strings of an array of strings, or nullptr when its items are not strings.
const MetaArray* stringItems(const MetaValue& v)
{
    return std::get_if<MetaArray>(&v.value);
}

} // namespace

// ---- SplitRegex ----

struct SplitRegex::Impl {
    pcre2_code* code = nullptr;
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* jitStack = nullptr;
    ~Impl()
    {
        if (context)
            pcre2_match_context_free(context);
        if (jitStack)
            pcre2_jit_stack_free(jitStack);
        if (code)
            pcre2_code_free(code);
    }
};

SplitRegex::SplitRegex(std::string_view pattern) : m_impl(std::make_unique<Impl>())
{
    if (pattern.empty() || pattern.size() > kMaxPatternLength)
        bad("split pattern is empty or longer than " + std::to_string(kMaxPatternLength) + " bytes");
    int error = 0;
    PCRE2_SIZE offset = 0;
    m_impl->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                 PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    if (!m_impl->code) {
        PCRE2_UCHAR message[256];
        pcre2_get_error_message(error, message, sizeof message);
        bad("split pattern does not compile at offset " + std::to_string(offset) + ": " +
            reinterpret_cast<const char*>(message));
    }
    m_impl->context = pcre2_match_context_create(nullptr);
    pcre2_set_match_limit(m_impl->context, kMatchLimit);
    pcre2_set_depth_limit(m_impl->context, kDepthLimit);
    // JIT is an optimisation: without it (unsupported CPU, no executable memory) the interpreter runs.
    if (pcre2_jit_compile(m_impl->code, PCRE2_JIT_COMPLETE) == 0) {
        m_impl->jitStack = pcre2_jit_stack_create(32 * 1024, 1024 * 1024, nullptr);
        if (m_impl->jitStack)
            pcre2_jit_stack_assign(m_impl->context, nullptr, m_impl->jitStack);
    }
}

SplitRegex::~SplitRegex() = default;

std::vector<std::string_view> SplitRegex::split(std::string_view text) const
{
    std::vector<std::string_view> pieces;
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(m_impl->code, nullptr);
    if (!md)
        throw Error(ErrorCode::Internal, "out of memory for regex match data");
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
    size_t pos = 0, gapStart = 0;
    while (pos < text.size()) {
        // The caller validated the UTF-8 once; PCRE2 need not check it again for every match.
        const int rc =
            pcre2_match(m_impl->code, subject, text.size(), pos, PCRE2_NO_UTF_CHECK, md, m_impl->context);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) {
            pcre2_match_data_free(md);
            PCRE2_UCHAR message[256];
            pcre2_get_error_message(rc, message, sizeof message);
            bad("split pattern failed at byte " + std::to_string(pos) + ": " +
                reinterpret_cast<const char*>(message));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t start = ov[0], end = ov[1];
        if (end == start) { // an empty match: step over one character
            pos = start + utf8Length(text, start);
            continue;
        }
        if (start > gapStart)
            pieces.push_back(text.substr(gapStart, start - gapStart));
        pieces.push_back(text.substr(start, end - start));
        pos = gapStart = end;
    }
    if (gapStart < text.size())
        pieces.push_back(text.substr(gapStart));
    pcre2_match_data_free(md);
    return pieces;
}

// ---- Tokenizer ----

Tokenizer::Tokenizer()
{
    std::fill(std::begin(m_byteTokens), std::end(m_byteTokens), -1);
}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::optional<size_t> firstInvalidUtf8(std::string_view s)
{
    for (size_t i = 0; i < s.size();) {
        const auto c = static_cast<unsigned char>(s[i]);
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            ++i;
            continue;
        } else if ((c >> 5) == 6) {
            n = 2;
            cp = c & 0x1F;
        } else if ((c >> 4) == 14) {
            n = 3;
            cp = c & 0x0F;
        } else if ((c >> 3) == 30) {
            n = 4;
            cp = c & 0x07;
        } else
            return i;
        if (i + n > s.size())
            return i;
        for (size_t k = 1; k < n; ++k) {
            const auto cc = static_cast<unsigned char>(s[i + k]);
            if ((cc >> 6) != 2)
                return i;
            cp = (cp << 6) | (cc & 0x3F);
        }
        const uint32_t minimum = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
        if (cp < minimum || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return i;
        i += n;
    }
    return std::nullopt;
}

void Tokenizer::finish()
{
    if (m_tokens.empty() || m_tokens.size() > kMaxVocab)
        bad("the vocabulary is empty or larger than " + std::to_string(kMaxVocab) + " tokens");
    m_ids.reserve(m_tokens.size());
    m_isControl.assign(m_tokens.size(), false);
    for (size_t i = 0; i < m_tokens.size(); ++i) {
        if (m_tokens[i].size() > kMaxTokenBytes)
            bad("token " + std::to_string(i) + " is longer than " + std::to_string(kMaxTokenBytes) +
                " bytes");
        m_ids.emplace(m_tokens[i], int32_t(i)); // the first of duplicate strings wins
        const int32_t type = i < m_types.size() ? m_types[i] : 1;
        if (type == 3)
            m_isControl[i] = true;
        if ((type == 3 || type == 4) && !m_tokens[i].empty())
            m_specials.push_back(int32_t(i));
        if (m_kind == TokenizerKind::SentencePiece && type == 6) {
            const std::string& t = m_tokens[i];
            unsigned v = 0;
            if (t.size() == 6 && t.starts_with("<0x") && t.back() == '>' &&
                std::sscanf(t.c_str() + 3, "%2X", &v) == 1)
                m_byteTokens[v & 0xFF] = int32_t(i);
        }
    }
    auto checkId = [&](std::optional<int32_t>& id) {
        if (id && (*id < 0 || size_t(*id) >= m_tokens.size()))
            id.reset();
    };
    checkId(m_bos);
    checkId(m_eos);
    checkId(m_unk);
    if (m_bos)
        m_isControl[size_t(*m_bos)] = true;
    if (m_eos)
        m_isControl[size_t(*m_eos)] = true;
    std::sort(m_specials.begin(), m_specials.end(), [&](int32_t a, int32_t b) {
        return m_tokens[size_t(a)].size() > m_tokens[size_t(b)].size() ||
               (m_tokens[size_t(a)].size() == m_tokens[size_t(b)].size() && a < b);
    });
    m_specials.erase(std::unique(m_specials.begin(), m_specials.end()), m_specials.end());
}

std::optional<Tokenizer> Tokenizer::fromModel(const Model& model)
{
    const MetaValue* kindValue = meta(model, "tokenizer.ggml.model");
    if (!kindValue) {
        if (model.format() == ModelFormat::Gguf)
            return std::nullopt;
        std::filesystem::path dir = model.path();
        std::error_code ec;
        if (!std::filesystem::is_directory(dir, ec))
            dir = dir.parent_path();
        if (std::filesystem::exists(dir / "tokenizer.json", ec))
            return fromHfJson(dir / "tokenizer.json");
        return std::nullopt;
    }
    const auto* kind = std::get_if<std::string>(&kindValue->value);
    const std::string file = model.path().string();
    if (!kind || (*kind != "llama" && *kind != "gpt2"))
        throw Error(ErrorCode::Unsupported, file + ": tokenizer model '" + (kind ? *kind : std::string("?")) +
                                                "' is not supported (llama and gpt2 are)");
    Tokenizer t;
    t.m_kind = *kind == "llama" ? TokenizerKind::SentencePiece : TokenizerKind::ByteLevelBpe;
    const MetaValue& tokenArray = metaArray(model, "tokenizer.ggml.tokens", SIZE_MAX);
    const MetaArray* tokenItems = stringItems(tokenArray);
    if (!tokenItems)
        bad(file + ": tokenizer.ggml.tokens holds a non-string");
    const MetaArray& tokens = *tokenItems;
    if (tokens.size() > kMaxVocab)
        bad(file + ": tokenizer.ggml.tokens has too many entries");
    t.m_tokens.reserve(tokens.size());
    for (const auto& v : tokens) {
        const auto* s = std::get_if<std::string>(&v.value);
        if (!s)
            bad(file + ": tokenizer.ggml.tokens holds a non-string");
        t.m_tokens.push_back(*s);
    }
    if (meta(model, "tokenizer.ggml.token_type")) {
        const MetaValue& types = metaArray(model, "tokenizer.ggml.token_type", tokens.size());
        for (size_t k = 0; k < types.arraySize(); ++k) {
            const MetaValue v = types.item(k);
            const auto* i = std::get_if<int64_t>(&v.value);
            const auto* u = std::get_if<uint64_t>(&v.value);
            t.m_types.push_back(i   ? int32_t(std::clamp<int64_t>(*i, -1, 100))
                                : u ? int32_t(std::min<uint64_t>(*u, 100))
                                    : 1);
        }
    }
    if (t.m_kind == TokenizerKind::SentencePiece) {
        if (meta(model, "tokenizer.ggml.scores")) {
            const MetaValue& scores = metaArray(model, "tokenizer.ggml.scores", tokens.size());
            for (size_t k = 0; k < scores.arraySize(); ++k) {
                const MetaValue v = scores.item(k);
                const auto* d = std::get_if<double>(&v.value);
                t.m_scores.push_back(d ? float(*d) : 0.0f);
            }
        } else
            t.m_scores.assign(tokens.size(), 0.0f);
        t.m_addSpacePrefix = metaBool(model, "tokenizer.ggml.add_space_prefix").value_or(true);
        t.m_addBos = metaBool(model, "tokenizer.ggml.add_bos_token").value_or(true);
    } else {
        const MetaValue& mergeArray = metaArray(model, "tokenizer.ggml.merges", SIZE_MAX);
        for (size_t r = 0; r < mergeArray.arraySize(); ++r) {
            const MetaValue item = mergeArray.item(r);
            const auto* s = std::get_if<std::string>(&item.value);
            if (!s || s->find(' ') == std::string::npos)
                bad(file + ": tokenizer.ggml.merges[" + std::to_string(r) + "] is not \"left right\"");
            t.m_mergeRank.emplace(*s, int32_t(r));
        }
        std::string pre;
        if (const MetaValue* p = meta(model, "tokenizer.ggml.pre"))
            if (const auto* s = std::get_if<std::string>(&p->value))
                pre = *s;
        const char* pattern = kGpt2SplitPattern;
        if (pre == "llama-bpe" || pre == "llama3" || pre == "smaug-bpe")
            pattern = kLlama3SplitPattern;
        else if (pre == "qwen2")
            pattern = kQwen2SplitPattern;
        else if (!pre.empty() && pre != "default" && pre != "gpt-2" && pre != "gpt2")
            throw Error(ErrorCode::Unsupported, file + ": pre-tokenizer '" + pre +
                                                    "' is not supported (llama-bpe, qwen2, gpt-2 are)");
        t.m_split = std::make_unique<SplitRegex>(pattern);
        t.m_addBos = metaBool(model, "tokenizer.ggml.add_bos_token").value_or(false);
    }
    auto id = [&](const char* key) -> std::optional<int32_t> {
        auto v = metaInt(model, key);
        if (v && *v >= 0 && *v <= INT32_MAX)
            return int32_t(*v);
        return std::nullopt;
    };
    t.m_bos = id("tokenizer.ggml.bos_token_id");
    t.m_eos = id("tokenizer.ggml.eos_token_id");
    t.m_unk = id("tokenizer.ggml.unknown_token_id");
    t.finish();
    return t;
}

Tokenizer Tokenizer::fromHfJson(const std::filesystem::path& path)
{
    const std::string file = path.string();
    // A regular file within the cap (a FIFO would block, /dev/zero never end), strict JSON.
    const QJsonDocument doc =
        json::parseDocument(readRegularFile(path, kMaxTokenizerJsonBytes, "tokenizer"), file, "json");
    if (!doc.isObject())
        throw FormatError(ErrorCode::BadValue, file, "json", 0, "not a JSON object");
    const QJsonObject root = doc.object();
    const QJsonObject model = root.value(QStringLiteral("model")).toObject();
    if (model.value(QStringLiteral("type")).toString() != QStringLiteral("BPE"))
        throw Error(ErrorCode::Unsupported, file + ": model.type '" +
                                                model.value(QStringLiteral("type")).toString().toStdString() +
                                                "' is not supported (BPE is)");
    Tokenizer t;
    t.m_kind = TokenizerKind::ByteLevelBpe;
    const QJsonObject vocab = model.value(QStringLiteral("vocab")).toObject();
    const QJsonArray added = root.value(QStringLiteral("added_tokens")).toArray();
    if (size_t(vocab.size()) + size_t(added.size()) > kMaxVocab)
        bad(file + ": model.vocab has too many entries");
    auto place = [&](int64_t id, const QString& text, const char* field) {
        if (id < 0 || size_t(id) >= kMaxVocab)
            bad(file + ": " + field + " holds id " + std::to_string(id) + " outside the vocabulary");
        if (size_t(id) >= t.m_tokens.size()) {
            t.m_tokens.resize(size_t(id) + 1);
            t.m_types.resize(size_t(id) + 1, 5); // unused until filled
        }
        t.m_tokens[size_t(id)] = text.toStdString();
        if (t.m_types[size_t(id)] == 5)
            t.m_types[size_t(id)] = 1;
    };
    for (auto it = vocab.begin(); it != vocab.end(); ++it)
        place(int64_t(it.value().toDouble(-1)), it.key(), "model.vocab");
    std::optional<int32_t> namedBos, namedEos;
    for (const auto& a : added) {
        const QJsonObject o = a.toObject();
        const int64_t id = int64_t(o.value(QStringLiteral("id")).toDouble(-1));
        const QString content = o.value(QStringLiteral("content")).toString();
        place(id, content, "added_tokens");
        t.m_types[size_t(id)] = o.value(QStringLiteral("special")).toBool() ? 3 : 4;
        if (content == QStringLiteral("<|begin_of_text|>") || content == QStringLiteral("<s>"))
            namedBos = int32_t(id);
        if (content == QStringLiteral("<|end_of_text|>") || content == QStringLiteral("</s>") ||
            content == QStringLiteral("<|endoftext|>"))
            namedEos = int32_t(id);
    }
    int32_t rank = 0;
    for (const auto& m : model.value(QStringLiteral("merges")).toArray()) {
        std::string key;
        if (m.isString())
            key = m.toString().toStdString();
        else if (m.isArray() && m.toArray().size() == 2)
            key = m.toArray()[0].toString().toStdString() + " " + m.toArray()[1].toString().toStdString();
        if (key.find(' ') == std::string::npos)
            bad(file + ": model.merges[" + std::to_string(rank) + "] is not a pair");
        t.m_mergeRank.emplace(std::move(key), rank++);
    }
    // The split pattern: a Split pre-tokenizer (alone or in a Sequence), else ByteLevel's GPT-2 pattern.
    std::string pattern;
    bool byteLevel = false;
    std::function<void(const QJsonObject&)> visit = [&](const QJsonObject& p) {
        const QString type = p.value(QStringLiteral("type")).toString();
        if (type == QStringLiteral("Sequence"))
            for (const auto& s : p.value(QStringLiteral("pretokenizers")).toArray())
                visit(s.toObject());
        else if (type == QStringLiteral("Split") && pattern.empty()) {
            const QJsonObject pat = p.value(QStringLiteral("pattern")).toObject();
            pattern = pat.value(QStringLiteral("Regex")).toString().toStdString();
            if (pattern.empty())
                throw Error(ErrorCode::Unsupported, file + ": only Regex split patterns are supported");
        } else if (type == QStringLiteral("ByteLevel")) {
            byteLevel = true;
            if (pattern.empty() && p.value(QStringLiteral("use_regex")).toBool(true))
                pattern = kGpt2SplitPattern;
        }
    };
    visit(root.value(QStringLiteral("pre_tokenizer")).toObject());
    if (!byteLevel)
        throw Error(ErrorCode::Unsupported, file + ": only byte-level BPE tokenizers are supported");
    t.m_split = std::make_unique<SplitRegex>(pattern.empty() ? std::string(kGpt2SplitPattern) : pattern);
    // BOS: from the post-processor's template when it has one.
    const QJsonObject post = root.value(QStringLiteral("post_processor")).toObject();
    std::function<void(const QJsonObject&)> visitPost = [&](const QJsonObject& p) {
        if (p.value(QStringLiteral("type")).toString() == QStringLiteral("Sequence"))
            for (const auto& s : p.value(QStringLiteral("processors")).toArray())
                visitPost(s.toObject());
        const QJsonArray single = p.value(QStringLiteral("single")).toArray();
        if (!single.isEmpty()) {
            const QJsonObject first =
                single.first().toObject().value(QStringLiteral("SpecialToken")).toObject();
            if (!first.isEmpty()) {
                const std::string name = first.value(QStringLiteral("id")).toString().toStdString();
                for (size_t i = 0; i < t.m_tokens.size(); ++i)
                    if (t.m_tokens[i] == name) {
                        namedBos = int32_t(i);
                        t.m_addBos = true;
                    }
            }
        }
    };
    visitPost(post);
    t.m_bos = namedBos;
    t.m_eos = namedEos;
    t.finish();
    return t;
}

const std::string& Tokenizer::tokenText(int32_t id) const
{
    if (id < 0 || size_t(id) >= m_tokens.size())
        bad("token id " + std::to_string(id) + " is outside the vocabulary of " +
            std::to_string(m_tokens.size()));
    return m_tokens[size_t(id)];
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool addBos, bool parseSpecial) const
{
    if (auto bad = firstInvalidUtf8(text))
        throw Error(ErrorCode::BadValue, "the text is not valid UTF-8 (first invalid byte at offset " +
                                             std::to_string(*bad) + ")");
    std::vector<int32_t> out;
    if (addBos) {
        if (!m_bos)
            bad("the vocabulary has no BOS token");
        else
            out.push_back(*m_bos);
    }
    // Cut the text at special tokens (longest first at each position), encode the fragments between.
    size_t start = 0, pos = 0;
    bool afterSpecial = true;
    while (pos < text.size()) {
        int32_t hit = -1;
        if (parseSpecial)
            for (int32_t id : m_specials) {
                const std::string& s = m_tokens[size_t(id)];
                if (text.compare(pos, s.size(), s) == 0) {
                    hit = id;
                    break;
                }
            }
        if (hit < 0) {
            pos += utf8Length(text, pos);
            continue;
        }
        if (pos > start) {
            encodeFragment(text.substr(start, pos - start), afterSpecial, out);
            afterSpecial = false;
        }
        out.push_back(hit);
        afterSpecial = true;
        pos += m_tokens[size_t(hit)].size();
        start = pos;
    }
    if (start < text.size())
        encodeFragment(text.substr(start), afterSpecial, out);
    return out;
}

void Tokenizer::encodeFragment(std::string_view text, bool spacePrefix, std::vector<int32_t>& out) const
{
    if (m_kind == TokenizerKind::SentencePiece)
        encodeSpm(text, spacePrefix && m_addSpacePrefix, out);
    else
        encodeBpe(text, out);
}

void Tokenizer::encodeSpm(std::string_view text, bool spacePrefix, std::vector<int32_t>& out) const
{
    // SentencePiece's normalisation: every space becomes U+2581, and a word start gets one in front.
    static const std::string kSpace = "\xE2\x96\x81";
    std::string norm;
    norm.reserve(text.size() + 3);
    if (spacePrefix)
        norm += kSpace;
    for (char ch : text)
        if (ch == ' ')
            norm += kSpace;
        else
            norm.push_back(ch);
    auto pieces = mergeSymbols(
        norm, [&](std::string_view, std::string_view, std::string_view merged) -> std::optional<double> {
            auto it = m_ids.find(std::string(merged));
            if (it == m_ids.end())
                return std::nullopt;
            return double(m_scores[size_t(it->second)]);
        });
    for (std::string_view p : pieces) {
        if (auto it = m_ids.find(std::string(p)); it != m_ids.end()) {
            out.push_back(it->second);
            continue;
        }
        for (char ch : p) { // byte fallback
            const int32_t id = m_byteTokens[static_cast<unsigned char>(ch)];
            if (id >= 0)
                out.push_back(id);
            else if (m_unk)
                out.push_back(*m_unk);
            else
                bad("no token and no byte fallback for byte " +
                    std::to_string(static_cast<unsigned char>(ch)));
        }
    }
}

void Tokenizer::encodeBpe(std::string_view text, std::vector<int32_t>& out) const
{
    const ByteTable& bt = byteTable();
    std::string mapped, key;
    for (std::string_view piece : m_split->split(text)) {
        mapped.clear();
        for (char ch : piece)
            mapped += bt.encode[static_cast<unsigned char>(ch)];
        if (auto it = m_ids.find(mapped); it != m_ids.end() && m_mergeRank.empty()) {
            out.push_back(it->second);
            continue;
        }
        auto parts = mergeSymbols(
            mapped, [&](std::string_view l, std::string_view r, std::string_view) -> std::optional<double> {
                key.assign(l);
                key.push_back(' ');
                key.append(r);
                auto it = m_mergeRank.find(key);
                if (it == m_mergeRank.end())
                    return std::nullopt;
                return -double(it->second);
            });
        for (std::string_view p : parts) {
            auto it = m_ids.find(std::string(p));
            if (it != m_ids.end()) {
                out.push_back(it->second);
                continue;
            }
            // A merge result missing from the vocabulary: fall back to its characters.
            for (size_t i = 0; i < p.size();) {
                const size_t n = utf8Length(p, i);
                auto c = m_ids.find(std::string(p.substr(i, n)));
                if (c != m_ids.end())
                    out.push_back(c->second);
                else if (m_unk)
                    out.push_back(*m_unk);
                else
                    bad("the vocabulary cannot represent a byte of the text");
                i += n;
            }
        }
    }
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool renderSpecial) const
{
    std::string out;
    const ByteTable& bt = byteTable();
    bool first = true;
    for (int32_t id : ids) {
        const std::string& t = tokenText(id);
        if (m_isControl[size_t(id)] && !renderSpecial)
            continue;
        const int32_t type = size_t(id) < m_types.size() ? m_types[size_t(id)] : 1;
        if (m_kind == TokenizerKind::SentencePiece) {
            if (type == 6) {
                unsigned v = 0;
                if (std::sscanf(t.c_str(), "<0x%2X>", &v) == 1)
                    out.push_back(char(v));
            } else {
                std::string piece;
                for (size_t i = 0; i < t.size();) {
                    if (t.compare(i, 3, "\xE2\x96\x81") == 0) {
                        piece.push_back(' ');
                        i += 3;
                    } else
                        piece.push_back(t[i++]);
                }
                // The space the encoder put in front of the text is not part of it.
                if (first && m_addSpacePrefix && !piece.empty() && piece.front() == ' ')
                    piece.erase(0, 1);
                out += piece;
            }
        } else if (type == 3 || type == 4) {
            out += t;
        } else {
            for (size_t i = 0; i < t.size();) {
                const size_t n = utf8Length(t, i);
                auto it = bt.decode.find(t.substr(i, n));
                if (it != bt.decode.end())
                    out.push_back(char(it->second));
                else
                    out.append(t, i, n);
                i += n;
            }
        }
        first = false;
    }
    return out;
}

std::vector<int32_t> readTokenIdFile(const std::filesystem::path& path)
{
    const std::string text = readRegularFile(path, uint64_t{1} << 30, "token ids");
    std::vector<int32_t> ids;
    for (size_t i = 0; i < text.size();) {
        const char c = text[i];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',') {
            ++i;
            continue;
        }
        if (c < '0' || c > '9')
            bad(path.string() + ": expected a token id at byte " + std::to_string(i));
        int64_t v = 0;
        while (i < text.size() && text[i] >= '0' && text[i] <= '9') {
            v = v * 10 + (text[i++] - '0');
            if (v > INT32_MAX)
                bad(path.string() + ": token id too large at byte " + std::to_string(i));
        }
        ids.push_back(int32_t(v));
    }
    return ids;
}

} // namespace qs
