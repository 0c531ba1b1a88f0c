#include "core/model/matrixview.h"

#include "core/model/model.h"
#include "core/util/error.h"

#include <algorithm>
#include <cstring>

namespace qs {

bool isChannelsLast(const Model& model, const TensorInfo& t)
{
    if (t.shape.size() < 2 || t.shape.back() == 0)
        return false;
    if (model.format() == ModelFormat::Hdf5 || model.format() == ModelFormat::Keras)
        return true;
    if (model.format() == ModelFormat::Gguf || t.shape.size() != 2)
        return false;
    if (t.name.ends_with(".w_0"))
        return true;
    // GPT-2's Conv1D (transformers' pytorch_utils.Conv1D: weight [nx, nf], y = x W + b) in c_attn, c_proj,
    // c_fc and q_attn. Only for model_type "gpt2": GPT-BigCode (StarCoder) uses the same names with Linear.
    if (model.config().architecture != "gpt2")
        return false;
    for (const char* suffix : {".c_attn.weight", ".c_proj.weight", ".c_fc.weight", ".q_attn.weight"})
        if (t.name.ends_with(suffix))
            return true;
    return false;
}

MatrixView matrixViewOf(const Model& model, const TensorInfo& t)
{
    MatrixView v;
    if (t.shape.size() >= 3 && t.shape[t.shape.size() - 2] > 0 && t.shape.back() > 0 &&
        (model.format() == ModelFormat::Hdf5 || model.format() == ModelFormat::Keras) &&
        t.name.find("depthwise_kernel") != std::string::npos) {
        // Keras DepthwiseConv1D/2D (and SeparableConv's depthwise part): [(kh,) kw, in, multiplier], output
        // channel i * multiplier + m filters input i alone, so a row is that channel's kernel positions.
        v.rows = t.shape[t.shape.size() - 2] * t.shape.back();
        v.cols = t.elements() / v.rows;
        v.transposed = true;
    } else if (t.shape.size() >= 2 && isChannelsLast(model, t)) {
        v.rows = t.shape.back();
        v.cols = t.elements() / v.rows;
        v.transposed = true;
    } else if (t.shape.size() >= 3 && t.role.role == TensorRole::Conv &&
               model.format() != ModelFormat::Gguf && t.shape[0] > 0) {
        v.rows = t.shape[0];
        v.cols = t.elements() / v.rows;
    } else {
        v.rows = t.rows();
        v.cols = t.columns();
    }
    return v;
}

namespace {

// dst[c * dstStride + r] = src[r * srcStride + c] for r < rows, c < cols: a (part of a) matrix into its
// transpose, in tiles that stay in L1.
void transposeTiles(const float* src, uint64_t rows, uint64_t cols, uint64_t srcStride, float* dst,
                    uint64_t dstStride)
{
    constexpr uint64_t kTile = 32;
    for (uint64_t r0 = 0; r0 < rows; r0 += kTile)
        for (uint64_t c0 = 0; c0 < cols; c0 += kTile) {
            const uint64_t r1 = std::min(rows, r0 + kTile), c1 = std::min(cols, c0 + kTile);
            for (uint64_t r = r0; r < r1; ++r)
                for (uint64_t c = c0; c < c1; ++c)
                    dst[c * dstStride + r] = src[r * srcStride + c];
        }
}

void transpose(const float* src, uint64_t rows, uint64_t cols, float* dst)
{
    transposeTiles(src, rows, cols, cols, dst, rows);
}

} // namespace

void storedToView(const MatrixView& view, const float* stored, float* out)
{
    if (view.transposed)
        transpose(stored, view.cols, view.rows, out);
    else
        std::memcpy(out, stored, view.rows * view.cols * sizeof(float));
}

void viewToStored(const MatrixView& view, const float* rows, float* stored)
{
    if (view.transposed)
        transpose(rows, view.rows, view.cols, stored);
    else
        std::memcpy(stored, rows, view.rows * view.cols * sizeof(float));
}

MatrixRowReader::MatrixRowReader(const Model& model, const TensorInfo& tensor, uint64_t windowElements)
    : m_model(model), m_tensor(tensor), m_view(matrixViewOf(model, tensor)),
      m_windowElements(std::max<uint64_t>(1, windowElements))
{
}

void MatrixRowReader::read(uint64_t firstRow, uint64_t rowCount, float* out)
{
    if (firstRow + rowCount > m_view.rows || firstRow + rowCount < firstRow)
        throw Error(ErrorCode::BadValue, m_tensor.name + ": rows out of range");
    if (!m_view.transposed) {
        // A flattened kernel's row is several stored rows (rows() x columns() with columns() = kw).
        const uint64_t perRow = m_view.cols / std::max<uint64_t>(1, m_tensor.columns());
        m_model.decodeRows(m_tensor, firstRow * perRow, rowCount * perRow, out);
        return;
    }
    if (rowCount == 0)
        return;
    if (firstRow < m_first || firstRow + rowCount > m_first + m_count)
        load(firstRow, rowCount);
    std::memcpy(out, m_window.data() + (firstRow - m_first) * m_view.cols,
                rowCount * m_view.cols * sizeof(float));
}

// View rows [firstRow, firstRow + count) are stored columns of every stored row: the stored rows are decoded
// a strip at a time and the window's columns of each strip transposed into place.
void MatrixRowReader::load(uint64_t firstRow, uint64_t rowCount)
{
    const uint64_t rows = m_view.rows, cols = m_view.cols; // stored: cols rows of `rows` values
    const uint64_t count =
        std::min(rows - firstRow,
                 std::max(rowCount, std::max<uint64_t>(1, m_windowElements / std::max<uint64_t>(1, cols))));
    constexpr uint64_t kStripElements = uint64_t(1) << 16;
    const uint64_t stripRows = std::min(cols, std::max<uint64_t>(1, kStripElements / rows));
    m_window.resize(count * cols);
    m_strip.resize(stripRows * rows);
    for (uint64_t s = 0; s < cols; s += stripRows) {
        const uint64_t n = std::min(stripRows, cols - s);
        m_model.decodeRows(m_tensor, s, n, m_strip.data());
        // strip: n x rows (stored); window: count x cols (view); window[j][s + i] = strip[i][firstRow + j].
        transposeTiles(m_strip.data() + firstRow, n, count, rows, m_window.data() + s, cols);
    }
    m_first = firstRow;
    m_count = count;
    ++m_loads;
}

} // namespace qs
