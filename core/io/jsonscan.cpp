#include "core/io/jsonscan.h"

#include "core/util/error.h"

#include <QByteArray>
#include <QJsonDocument>
#include <algorithm>

namespace qs::json {

namespace {

bool isSpace(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

void appendUtf8(std::string& out, uint32_t cp)
{
    if (cp < 0x80) {
        out += static_cast<char>(cp);
    } else if (cp < 0x800) {
        out += static_cast<char>(0xC0 | (cp >> 6));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += static_cast<char>(0xE0 | (cp >> 12));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
        out += static_cast<char>(0xF0 | (cp >> 18));
        out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (cp & 0x3F));
    }
}

std::optional<uint32_t> hex4(std::string_view text, size_t pos)
{
    if (pos + 4 > text.size())
        return std::nullopt;
    uint32_t v = 0;
    for (size_t i = pos; i < pos + 4; ++i) {
        const char c = text[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= static_cast<uint32_t>(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= static_cast<uint32_t>(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= static_cast<uint32_t>(c - 'A' + 10);
        else
            return std::nullopt;
    }
    return v;
}

// Decodes the string whose opening quote is at `pos`; returns the position after the closing quote
// (text.size() when unterminated).
size_t readString(std::string_view text, size_t pos, std::string* out)
{
    size_t i = pos + 1;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '"')
            return i + 1;
        if (c != '\\') {
            if (out)
                *out += c;
            ++i;
            continue;
        }
        if (i + 1 >= text.size())
            break;
        const char e = text[i + 1];
        i += 2;
        if (!out) {
            continue; // skipping only: \uXXXX digits cannot contain a quote
        }
        switch (e) {
        case 'b':
            *out += '\b';
            break;
        case 'f':
            *out += '\f';
            break;
        case 'n':
            *out += '\n';
            break;
        case 'r':
            *out += '\r';
            break;
        case 't':
            *out += '\t';
            break;
        case 'u': {
            const auto u = hex4(text, i);
            if (!u)
                break;
            i += 4;
            uint32_t cp = *u;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                const auto lo = (i + 1 < text.size() && text[i] == '\\' && text[i + 1] == 'u')
                                    ? hex4(text, i + 2)
                                    : std::nullopt;
                if (lo && *lo >= 0xDC00 && *lo <= 0xDFFF) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (*lo - 0xDC00);
                    i += 6;
                } else {
                    cp = '?';
                }
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                cp = '?';
            }
            appendUtf8(*out, cp);
            break;
        }
        default:
            *out += e;
            break; // \" \\ \/
        }
    }
    return text.size();
}

// Skips the value starting at `pos` (whitespace already skipped); returns the position after it.
size_t skipValue(std::string_view text, size_t pos)
{
    size_t depth = 0;
    size_t i = pos;
    while (i < text.size()) {
        const char c = text[i];
        if (c == '"') {
            i = readString(text, i, nullptr);
        } else if (c == '{' || c == '[') {
            ++depth;
            ++i;
        } else if (c == '}' || c == ']') {
            if (depth == 0)
                return i; // end of the enclosing container
            --depth;
            ++i;
        } else if (c == ',' || isSpace(c)) {
            if (depth == 0)
                return i;
            ++i;
        } else {
            ++i; // scalar characters, ':' inside nested objects
        }
        if (depth == 0 && (c == '"' || c == '}' || c == ']'))
            return i;
    }
    return text.size();
}

} // namespace

std::optional<size_t> findInvalidUtf8(std::string_view text)
{
    const auto* p = reinterpret_cast<const unsigned char*>(text.data());
    const size_t n = text.size();
    size_t i = 0;
    while (i < n) {
        const unsigned char c = p[i];
        if (c < 0x80) {
            ++i;
            continue;
        }
        size_t len;
        uint32_t cp;
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            cp = c & 0x07;
        } else {
            return i;
        }
        if (n - i < len)
            return i;
        for (size_t k = 1; k < len; ++k) {
            if ((p[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) ||
            (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
            return i;
        i += len;
    }
    return std::nullopt;
}

size_t skipWhitespace(std::string_view text, size_t from)
{
    while (from < text.size() && isSpace(text[from]))
        ++from;
    return from;
}

std::vector<Member> objectMembers(std::string_view text, size_t begin)
{
    std::vector<Member> members;
    size_t i = skipWhitespace(text, begin);
    if (i >= text.size() || text[i] != '{')
        return members;
    i = skipWhitespace(text, i + 1);
    while (i < text.size() && text[i] == '"') {
        Member m;
        m.keyOffset = i;
        i = skipWhitespace(text, readString(text, i, &m.key));
        if (i >= text.size() || text[i] != ':')
            break;
        i = skipWhitespace(text, i + 1);
        m.valueOffset = i;
        m.valueEnd = skipValue(text, i);
        i = skipWhitespace(text, m.valueEnd);
        members.push_back(std::move(m));
        if (i >= text.size() || text[i] != ',')
            break;
        i = skipWhitespace(text, i + 1);
    }
    return members;
}

const Member* findDuplicate(const std::vector<Member>& members)
{
    std::vector<size_t> order(members.size());
    for (size_t i = 0; i < order.size(); ++i)
        order[i] = i;
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return members[a].key < members[b].key; });
    const Member* best = nullptr;
    for (size_t k = 1; k < order.size(); ++k)
        if (members[order[k]].key == members[order[k - 1]].key &&
            (!best || order[k] < size_t(best - members.data())))
            best = &members[order[k]];
    return best;
}

std::optional<size_t> findRawControl(std::string_view text)
{
    bool inString = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c < 0x20 && (inString || !isSpace(static_cast<char>(c))))
            return i;
        if (!inString) {
            inString = c == '"';
        } else if (c == '\\') {
            ++i; // the escaped character (a control character there is caught by QJsonDocument)
        } else if (c == '"') {
            inString = false;
        }
    }
    return std::nullopt;
}

QJsonDocument parseDocument(std::string_view text, const std::string& file, const std::string& what,
                            uint64_t base)
{
    auto fail = [&](size_t pos, const std::string& msg) {
        throw FormatError(ErrorCode::BadValue, file, what, base + pos, msg);
    };
    if (const auto bad = findInvalidUtf8(text))
        fail(*bad, "not valid UTF-8");
    if (const auto ctl = findRawControl(text))
        fail(*ctl, "raw control character " + std::to_string(static_cast<unsigned char>(text[*ctl])) +
                       " (JSON needs an escape such as \\u0000)");
    QJsonParseError err{};
    auto doc = QJsonDocument::fromJson(
        QByteArray::fromRawData(text.data(), static_cast<qsizetype>(text.size())), &err);
    if (err.error != QJsonParseError::NoError)
        fail(static_cast<size_t>(std::max(0, err.offset)), "not valid JSON: " + err.errorString().toStdString());
    return doc;
}

QJsonObject parseObject(std::string_view text, const std::string& file, uint64_t base,
                        const std::string& what, std::vector<Member>* members)
{
    auto fail = [&](const std::string& field, size_t pos, const std::string& msg) {
        throw FormatError(ErrorCode::BadValue, file, field, base + pos, msg);
    };
    const size_t first = skipWhitespace(text, 0);
    if (first >= text.size() || text[first] != '{') {
        if (const auto bad = findInvalidUtf8(text))
            fail(what, *bad, "not valid UTF-8");
        fail(what, first, "not a JSON object");
    }
    const auto doc = parseDocument(text, file, what, base);
    if (!doc.isObject())
        fail(what, first, "not a JSON object");
    auto obj = doc.object();
    *members = objectMembers(text, 0);
    if (members->size() != static_cast<size_t>(obj.size())) {
        if (const auto* dup = findDuplicate(*members))
            fail(dup->key, dup->keyOffset, "appears twice");
        fail(what, first, "holds duplicate keys");
    }
    return obj;
}

} // namespace qs::json
