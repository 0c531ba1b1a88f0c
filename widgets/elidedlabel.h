#pragma once
// A one-line label for long texts such as file paths: shows as much as fits, with an ellipsis in the middle
// ("/home/me/…/llama-8b/model.safetensors") so both the root and the file name stay visible; the full text
// is the tooltip, and the context menu's "Copy" copies it. Summaries that end in detail elide on the right
// (setElideMode(Qt::ElideRight)).

#include <QLabel>

namespace qs {

class ElidedLabel final : public QLabel {
    Q_OBJECT
public:
    explicit ElidedLabel(const QString& text, QWidget* parent = nullptr);

    QString fullText() const { return m_full; }
    void setFullText(const QString& text);
    void setElideMode(Qt::TextElideMode mode);

    QSize minimumSizeHint() const override;
    QSize sizeHint() const override;

protected:
    void resizeEvent(QResizeEvent* event) override;

private:
    void updateElided();

    QString m_full;
    Qt::TextElideMode m_mode = Qt::ElideMiddle;
};

} // namespace qs
