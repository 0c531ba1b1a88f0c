#include "app/gui/errorpresenter.h"

#include <QMessageBox>

namespace qs {

ErrorPresenter messageBoxPresenter(QWidget* parent)
{
    return [parent](const QString& title, const QString& text, const QString& detail) {
        auto* box = new QMessageBox(QMessageBox::Critical, title, text, QMessageBox::Ok, parent);
        box->setInformativeText(detail);
        box->setTextInteractionFlags(Qt::TextSelectableByMouse);
        box->setAttribute(Qt::WA_DeleteOnClose);
        box->setObjectName(QStringLiteral("loadErrorBox"));
        box->open();
    };
}

} // namespace qs
