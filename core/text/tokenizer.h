#pragma once
// Tokenizers for the forward pass: SentencePiece-style (GGUF "llama" vocab: scores, byte fallback) and
// byte-level BPE (GGUF "gpt2" vocab with merges, Hugging Face tokenizer.json), with special tokens.
//
// Text must be valid UTF-8: encode() throws qs::Error(BadValue) naming the byte offset of the first invalid
// sequence (it does not fall back to bytes, so a Latin-1 file is noticed instead of silently mis-tokenized).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace qs {

class Model;
class SplitRegex;

enum class TokenizerKind : uint8_t { SentencePiece, ByteLevelBpe };

// The pre-tokenizer split patterns of the known families (as in their tokenizer.json files).
extern const char* const kGpt2SplitPattern;
extern const char* const kLlama3SplitPattern;
extern const char* const kQwen2SplitPattern;

// Splits text into pieces with a PCRE2 pattern (UTF + Unicode properties, JIT when available, match and
// depth limits set because the pattern may come from a hostile file). Pieces are the matches and the
// gaps between them ("Isolated" behaviour), in order, covering the whole text.
class SplitRegex {
public:
    // Throws qs::Error(BadValue) when the pattern does not compile or is too long.
    explicit SplitRegex(std::string_view pattern);
    ~SplitRegex();
    SplitRegex(const SplitRegex&) = delete;
    SplitRegex& operator=(const SplitRegex&) = delete;
    // text must be valid UTF-8. Throws qs::Error(BadValue) when a match limit is hit.
    std::vector<std::string_view> split(std::string_view text) const;

private:
    struct Impl;
    std::unique_ptr<Impl> m_impl;
};

class Tokenizer {
public:
    // From a model: GGUF tokenizer.ggml.* keys, else tokenizer.json beside a safetensors model. nullopt when
    // the model carries no vocabulary. Throws qs::FormatError / qs::Error on a malformed vocabulary.
    static std::optional<Tokenizer> fromModel(const Model& model);
    // A Hugging Face tokenizer.json (model type BPE with a ByteLevel pre-tokenizer / decoder).
    static Tokenizer fromHfJson(const std::filesystem::path& path);

    TokenizerKind kind() const { return m_kind; }
    size_t vocabSize() const { return m_tokens.size(); }
    std::optional<int32_t> bos() const { return m_bos; }
    std::optional<int32_t> eos() const { return m_eos; }
    bool addBosByDefault() const { return m_addBos; }
    const std::string& tokenText(int32_t id) const; // the vocabulary's string ("▁the", "Ġthe", "<0x0A>")

    // parseSpecial: text equal to a special / added token's content becomes that token.
    std::vector<int32_t> encode(std::string_view text, bool addBos, bool parseSpecial = true) const;
    // Control tokens (BOS, EOS, ...) are left out unless renderSpecial.
    std::string decode(std::span<const int32_t> ids, bool renderSpecial = false) const;

    Tokenizer(Tokenizer&&) noexcept;
    Tokenizer& operator=(Tokenizer&&) noexcept;
    ~Tokenizer();

private:
    Tokenizer();
    void finish(); // builds the lookup tables once tokens, merges and specials are set
    void encodeFragment(std::string_view text, bool spacePrefix, std::vector<int32_t>& out) const;
    void encodeSpm(std::string_view text, bool spacePrefix, std::vector<int32_t>& out) const;
    void encodeBpe(std::string_view text, std::vector<int32_t>& out) const;

    TokenizerKind m_kind = TokenizerKind::SentencePiece;
    std::vector<std::string> m_tokens;
    std::vector<float> m_scores;  // SentencePiece merge priority
    std::vector<int32_t> m_types; // llama.cpp token types (1 normal, 3 control, 4 user-defined, 6 byte)
    std::unordered_map<std::string, int32_t> m_ids;
    std::unordered_map<std::string, int32_t> m_mergeRank; // "left right" -> rank (BPE)
    std::vector<int32_t> m_specials;                      // ids matched verbatim in text, longest first
    std::vector<bool> m_isControl;                        // left out by decode()
    std::optional<int32_t> m_bos, m_eos, m_unk;
    bool m_addBos = false;
    bool m_addSpacePrefix = true;        // SentencePiece
    int32_t m_byteTokens[256];           // SentencePiece byte fallback "<0xXX>", -1 when missing
    std::unique_ptr<SplitRegex> m_split; // BPE pre-tokenizer
};

// A token-id file for models without a vocabulary: integers separated by whitespace or commas.
// Throws qs::Error(BadValue) naming the offset of anything else.
std::vector<int32_t> readTokenIdFile(const std::filesystem::path& path);

// Offset of the first byte that is not part of valid UTF-8, nullopt when the text is valid.
std::optional<size_t> firstInvalidUtf8(std::string_view text);

} // namespace qs
