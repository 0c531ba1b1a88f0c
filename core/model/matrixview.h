#pragma once
// How a runtime sees a weight as the matrix it quantizes row by row: one row per output channel, the row
// holding everything that output channel multiplies (input features, times the kernel positions of a
// convolution). Quantizers group values along a row, so a per-row scale or a block of 32 has to run along
// the input axis, whatever order the source format stores the tensor in.
//
//   PyTorch / safetensors [out, in] and OIHW kernels [out, in, (kd,) kh, kw]: rows = out, a row = in·kd·kh·kw
//     values in stored order (as PyTorch's weight.reshape(out, -1)); stacked 3-D tensors [experts, out, in]
//     are experts·out rows of in.
//   Paddle: Linear "*.w_0" [in, out] is transposed (rows = out, a row = in); convolutions are OIHW as above.
//   GPT-2 (model_type "gpt2"): Conv1D c_attn / c_proj / c_fc / q_attn [in, out] is transposed likewise.
//   Keras kernels (HDF5 / .keras) [..., in, out]: transposed, rows = out, a row = the kh·kw·in values in
//     stored order (TFLite's OHWI filter layout, one per-axis scale per output channel). A depthwise kernel
//     [(kh,) kw, in, multiplier] has in·multiplier rows of its kernel positions (TFLite: [1, kh, kw, out]).
//   GGUF: as stored, rows() x columns() (ggml quantizes along ne[0], the last axis here).
//
// See docs/sensitivity.md ("Layouts").

#include <cstdint>
#include <vector>

namespace qs {

class Model;
struct TensorInfo;

// Whether a source format stores the output channel on the last axis ([..., in, out]): Keras kernels (HDF5 /
// .keras), Paddle's Linear weights ("linear_N.w_0", [in, out]; Paddle convolutions are [out, in, kh, kw]) and
// GPT-2's Conv1D weights (c_attn, c_proj, c_fc, q_attn of a model_type "gpt2" checkpoint, [in, out]).
// PyTorch, safetensors checkpoints and GGUF put it first. False for tensors of fewer than two dimensions.
bool isChannelsLast(const Model& model, const TensorInfo& tensor);

struct MatrixView {
    uint64_t rows = 0; // output channels
    uint64_t cols = 0; // values per output channel
    // Stored as this matrix's transpose, a row-major [cols, rows] ([..., in, out] with the leading axes
    // flattened): row r of the view is stored column r.
    bool transposed = false;
};

// The matrix a runtime quantizes for this tensor of this model (see above).
MatrixView matrixViewOf(const Model& model, const TensorInfo& tensor);

// Stored order <-> view order of a whole tensor (rows * cols values each; a copy when not transposed).
void storedToView(const MatrixView& view, const float* stored, float* out);
void viewToStored(const MatrixView& view, const float* rows, float* stored);

// Reads rows of a tensor's matrix view, for work that goes through a tensor in row chunks. As stored, it is
// Model::decodeRows (a flattened kernel's row being several stored rows of kw values). Transposed, the
// stored rows are decoded in strips and scattered into a window of consecutive view rows kept here (at most
// max(windowElements, one read) floats plus one strip): a read inside the window is a copy, a read outside
// reloads the window from its first row, decoding the whole tensor once per window. Reads in ascending order therefore decode a tensor of at most windowElements
// values once, and a larger one once per window.
class MatrixRowReader {
public:
    MatrixRowReader(const Model& model, const TensorInfo& tensor,
                    uint64_t windowElements = uint64_t(1) << 24);
    const MatrixView& view() const { return m_view; }
    void read(uint64_t firstRow, uint64_t rowCount, float* out);
    uint64_t windowLoads() const { return m_loads; } // how often the tensor was decoded (transposed only)

private:
    void load(uint64_t firstRow, uint64_t rowCount);

    const Model& m_model;
    const TensorInfo& m_tensor;
    MatrixView m_view;
    uint64_t m_windowElements;
    uint64_t m_first = 0, m_count = 0; // the view rows held in m_window
    uint64_t m_loads = 0;
    std::vector<float> m_window, m_strip;
};

} // namespace qs
