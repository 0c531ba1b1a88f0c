#include "widgets/formatchooser.h"

#include "core/quant/format.h"

#include <QAction>
#include <QMenu>
#include <QSignalBlocker>
#include <array>

namespace qs {

namespace {

const char* kindTitle(FormatKind kind)
{
    switch (kind) {
    case FormatKind::Float:
        return "Floating point";
    case FormatKind::Ggml:
        return "GGUF (llama.cpp)";
    case FormatKind::Integer:
        return "Integer (GPTQ / AWQ / compressed-tensors)";
    case FormatKind::Fp8:
        return "FP8";
    case FormatKind::Nf4:
        return "NF4 (bitsandbytes)";
    case FormatKind::Mx:
        return "Microscaling (MX)";
    }
    return "Other";
}

} // namespace

FormatChooser::FormatChooser(QWidget* parent) : QToolButton(parent)
{
    setObjectName(QStringLiteral("sensitivityFormatsButton"));
    setPopupMode(QToolButton::InstantPopup);
    setToolTip(tr("Choose the formats Compute measures (the heatmap's columns); remembered"));
    auto* menu = new QMenu(this);
    menu->addAction(tr("Defaults"), this, [this] {
        setChosenFormats(defaultFormats());
        emit formatsChanged(chosenFormats());
    });
    constexpr std::array kinds{FormatKind::Float, FormatKind::Ggml, FormatKind::Integer,
                               FormatKind::Fp8,   FormatKind::Nf4,  FormatKind::Mx};
    const auto names = allFormatNames();
    for (FormatKind kind : kinds) {
        bool section = false;
        for (const std::string& n : names) {
            const auto f = findFormat(n);
            if (!f || f->traits().kind != kind)
                continue;
            if (!section) {
                menu->addSection(tr(kindTitle(kind)));
                section = true;
            }
            QAction* a = menu->addAction(QString::fromStdString(n));
            a->setCheckable(true);
            a->setEnabled(f->available());
            m_actions << a;
        }
    }
    connect(menu, &QMenu::triggered, this, [this](QAction* a) {
        if (a->isCheckable())
            onToggled(a);
    });
    setMenu(menu);
    setChosenFormats(defaultFormats());
}

QStringList FormatChooser::defaultFormats()
{
    QStringList out;
    for (const std::string& f : defaultSensitivityFormats())
        out << QString::fromStdString(f);
    return out;
}

QStringList FormatChooser::chosenFormats() const
{
    QStringList out;
    QStringList order = defaultFormats();
    for (const std::string& n : allFormatNames())
        if (!order.contains(QString::fromStdString(n)))
            order << QString::fromStdString(n);
    for (const QString& n : order)
        if (QAction* a = formatAction(n); a && a->isChecked())
            out << a->text();
    return out;
}

void FormatChooser::setChosenFormats(const QStringList& formats)
{
    bool any = false;
    for (QAction* a : m_actions) {
        const bool on = a->isEnabled() && formats.contains(a->text());
        a->setChecked(on);
        any = any || on;
    }
    if (!any && formats != defaultFormats())
        setChosenFormats(defaultFormats());
    updateText();
}

QAction* FormatChooser::formatAction(const QString& format) const
{
    for (QAction* a : m_actions)
        if (a->text() == format)
            return a;
    return nullptr;
}

void FormatChooser::onToggled(QAction* action)
{
    if (chosenFormats().isEmpty()) {
        const QSignalBlocker block(action);
        action->setChecked(true); // one format at least
        return;
    }
    updateText();
    emit formatsChanged(chosenFormats());
}

void FormatChooser::updateText()
{
    setText(tr("Formats (%1)").arg(chosenFormats().size())); // the menu arrow says there is more
}

} // namespace qs
