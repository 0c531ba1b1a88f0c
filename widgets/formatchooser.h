#pragma once
// A "Formats…" button whose menu lists every built-in quantization format, grouped by kind, as checkable
// entries: the candidate formats of the sensitivity matrix. At least one stays checked; "Defaults" restores
// defaultSensitivityFormats().

#include <QStringList>
#include <QToolButton>

class QAction;

namespace qs {

class FormatChooser final : public QToolButton {
    Q_OBJECT
    Q_DISABLE_COPY_MOVE(FormatChooser)

public:
    explicit FormatChooser(QWidget* parent = nullptr);

    // The checked formats: those of the defaults in their order, then the others in allFormatNames() order.
    QStringList chosenFormats() const;
    // Checks exactly these (unknown names are ignored; nothing known: the defaults). No signal.
    void setChosenFormats(const QStringList& formats);
    // The checkable entry of a format (nullptr for unknown names), for tests.
    QAction* formatAction(const QString& format) const;

    static QStringList defaultFormats();

signals:
    void formatsChanged(const QStringList& formats);

private:
    void onToggled(QAction* action);
    void updateText();

    QList<QAction*> m_actions;
};

} // namespace qs
