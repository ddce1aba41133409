"""A generated support corpus where the right answer is known: for the suggestion tests and bench.

Each topic is a question customers ask in their own words (several phrasings, filled with products,
order numbers, names, greetings, signatures and sentences that say nothing) and the answers agents
give to it (two ways of saying it). Topics come in look-alike pairs that share words (reset a
password / change the sign-in email, a refund / a return label, …), so a match on one common word is
not enough. Half the topics are Russian. Deterministic for a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

PRODUCTS = ["Nimbus lamp", "Orbit kettle", "Pico camera", "Terra backpack", "Vela speaker"]
PRODUCTS_RU = ["лампа Нимбус", "чайник Орбита", "камера Пико", "рюкзак Терра", "колонка Вела"]

TOPICS: dict[str, tuple[list[str], list[str]]] = {
    "password_reset": (
        [
            "I forgot my password and can't sign in to my account.",
            "How do I reset my password? The old one doesn't work anymore.",
            "Password reset email never arrives, I need to log in.",
            "Locked out of my account, need a new password please.",
            "Can you help me recover my password for the shop?",
        ],
        [
            "Use the 'Forgot password' link on the sign-in page; the reset link is valid for one hour. "
            "Check the spam folder if it does not arrive.",
            "To reset the password open the sign-in page and press 'Forgot password'. The email with the "
            "reset link comes within a few minutes (look in spam too).",
        ],
    ),
    "change_email": (
        [
            "How can I change the email address on my account?",
            "I want to sign in with a different email, how do I update it?",
            "My old email address is gone, please change my login email.",
            "Need to update the email on my profile to my work address.",
        ],
        [
            "Open Profile > Account and enter the new email address; we send a confirmation link to it, and "
            "the change applies once you click it.",
            "You can change the login email in Profile > Account. Confirm the new address with the link we "
            "email you.",
        ],
    ),
    "refund_status": (
        [
            "Where is my refund? I returned the {product} two weeks ago.",
            "I still haven't received my money back for order {order}.",
            "When will the refund for my return arrive on my card?",
            "Refund not credited yet for the returned {product}.",
            "You received my return, so where is the refund?",
        ],
        [
            "Refunds are sent within 5 business days after the warehouse receives the parcel; your bank may "
            "need up to 10 more days to show it on the card.",
            "Once the returned item reaches our warehouse we refund within 5 business days. Card payments can "
            "take another week to appear.",
        ],
    ),
    "return_label": (
        [
            "How do I return the {product}? I need a return label.",
            "Please send me a return shipping label for order {order}.",
            "I want to send back the {product}, how does the return work?",
            "Where can I print the label to return my order?",
        ],
        [
            "Start the return in Orders > Return item; the prepaid label is emailed to you as a PDF to print "
            "and stick on the parcel.",
            "Returns are free: choose the order in Orders, press 'Return item' and print the prepaid label we "
            "email you.",
        ],
    ),
    "shipping_delay": (
        [
            "My order {order} has not arrived yet, it was supposed to come {when}.",
            "The tracking for my {product} hasn't updated in days. Where is the package?",
            "Delivery is late, order {order} still not here.",
            "Has my parcel been shipped? It's been a week since I ordered.",
            "The courier never delivered my {product}.",
        ],
        [
            "Sorry for the wait. Your parcel is with the courier; tracking can pause for up to 3 days between "
            "hubs. If it has not moved in 7 days we send a replacement.",
            "The courier has your package. Tracking updates can stop for a couple of days in transit; after 7 "
            "days without movement we reship it at our cost.",
        ],
    ),
    "change_address": (
        [
            "I entered the wrong delivery address for order {order}, can you change it?",
            "Please update the shipping address, I moved.",
            "Can I change where my {product} is delivered?",
            "Wrong street in my address, fix it before shipping please.",
        ],
        [
            "We can change the delivery address until the order ships: reply with the full new address and we "
            "update it. After shipping, the courier's site lets you redirect the parcel.",
            "Send us the correct address and we change it as long as the order has not shipped yet; after that "
            "use the courier's redirect option.",
        ],
    ),
    "invoice_copy": (
        [
            "I need an invoice for order {order} for my company.",
            "Where can I download the invoice for my purchase?",
            "Please send a VAT invoice for the {product}.",
            "Can I get a copy of my invoice with our company details?",
        ],
        [
            "Invoices are in Orders > Invoice (PDF). To add company details and a VAT number, fill them in "
            "Profile > Billing before downloading.",
            "You can download every invoice as a PDF in Orders. Company name and VAT number come from Profile > "
            "Billing.",
        ],
    ),
    "double_charge": (
        [
            "I was charged twice for order {order}!",
            "My card shows two payments for the same {product}.",
            "Double charge on my credit card, please refund one.",
            "Why did you take the payment two times?",
        ],
        [
            "The second charge is a card authorisation hold, not a payment: your bank releases it within 3 to 5 "
            "days without any action from you.",
            "Only one payment was taken; the other line is a temporary authorisation hold that your bank removes "
            "within 5 days.",
        ],
    ),
    "broken_item": (
        [
            "The {product} arrived broken, the glass is cracked.",
            "My {product} stopped working after two days.",
            "The {product} is damaged, what can I do?",
            "Received a defective {product}, it won't turn on.",
            "The {product} I got is faulty.",
        ],
        [
            "Sorry it arrived damaged. Send us a photo of the item and the box and we ship a replacement at once; "
            "you do not need to return the broken one.",
            "We replace damaged or faulty items for free: reply with a photo of the damage and we send a new one "
            "right away.",
        ],
    ),
    "cancel_order": (
        [
            "Please cancel my order {order}, I changed my mind.",
            "I ordered the wrong {product}, can I cancel?",
            "How do I cancel an order I placed {when}?",
            "Cancel order {order} before it ships please.",
        ],
        [
            "Orders can be cancelled in Orders > Cancel until they ship; the money returns to your card within "
            "5 days. If it has shipped, refuse the parcel or return it.",
            "As long as the order has not shipped, press Cancel in Orders and the payment is returned. Shipped "
            "orders can be returned instead.",
        ],
    ),
    "discount_code": (
        [
            "My discount code doesn't work at checkout.",
            "The promo code says invalid, I got it in your newsletter.",
            "Coupon not applied to my order {order}.",
            "Why is my voucher code rejected?",
        ],
        [
            "Promo codes work once per account and not on items already on sale; check the expiry date in the "
            "newsletter. Send us the code and we apply it by hand if it should work.",
            "A code is rejected when it has expired, was used before, or the cart has sale items. Tell us the "
            "code and we will look.",
        ],
    ),
    "unsubscribe": (
        [
            "Please stop sending me marketing emails.",
            "How do I unsubscribe from the newsletter?",
            "Remove me from your mailing list.",
            "Too many promotional emails, turn them off.",
        ],
        [
            "Every newsletter has an Unsubscribe link at the bottom; or switch off marketing email in Profile > "
            "Notifications. Order emails keep coming.",
            "Turn off newsletters in Profile > Notifications or use the Unsubscribe link in any of them.",
        ],
    ),
    "ru_password": (
        [
            "Не могу войти в личный кабинет, забыл пароль.",
            "Как восстановить пароль? Старый не подходит.",
            "Письмо для сброса пароля не приходит.",
            "Помогите сменить пароль от аккаунта.",
            "Не получается зайти в аккаунт, пароль неверный.",
        ],
        [
            "Нажмите «Забыли пароль» на странице входа — ссылка для сброса действует час. Если письма нет, "
            "проверьте папку «Спам».",
            "Пароль восстанавливается по ссылке «Забыли пароль» на странице входа; письмо приходит за несколько "
            "минут, загляните и в «Спам».",
        ],
    ),
    "ru_change_email": (
        [
            "Как поменять электронную почту в аккаунте?",
            "Хочу входить с другой почты, как её изменить?",
            "Старый адрес почты больше не работает, смените почту для входа.",
            "Нужно обновить почту в профиле на рабочую.",
        ],
        [
            "Откройте Профиль → Аккаунт и введите новый адрес; мы пришлём на него ссылку для подтверждения.",
            "Почту для входа можно сменить в разделе Профиль → Аккаунт, подтвердив новый адрес по ссылке из "
            "письма.",
        ],
    ),
    "ru_refund": (
        [
            "Где мои деньги? Вернул {product} две недели назад.",
            "Так и не пришёл возврат денег за заказ {order}.",
            "Когда вернутся деньги за возврат на карту?",
            "Деньги за возвращённый товар до сих пор не поступили.",
            "Возврат получили, а деньги где?",
        ],
        [
            "Деньги отправляем в течение 5 рабочих дней после того, как посылка приходит на склад; банку может "
            "понадобиться ещё до 10 дней.",
            "Как только возврат приходит на склад, мы возвращаем деньги за 5 рабочих дней. На карте они могут "
            "появиться ещё через неделю.",
        ],
    ),
    "ru_return": (
        [
            "Как вернуть {product}? Нужна накладная для возврата.",
            "Пришлите, пожалуйста, этикетку для отправки возврата по заказу {order}.",
            "Хочу отправить {product} обратно, как оформить возврат?",
            "Где распечатать наклейку для возврата заказа?",
        ],
        [
            "Оформите возврат в разделе Заказы → Вернуть товар; оплаченная этикетка придёт на почту в PDF — "
            "распечатайте и наклейте на коробку.",
            "Возврат бесплатный: выберите заказ, нажмите «Вернуть товар» и распечатайте этикетку из письма.",
        ],
    ),
    "ru_delivery": (
        [
            "Заказ {order} до сих пор не доставлен, а должен был прийти {when_ru}.",
            "Трек-номер не обновляется уже несколько дней, где посылка?",
            "Доставка задерживается, заказа {order} всё нет.",
            "Отправили ли мою посылку? Прошла неделя после заказа.",
            "Курьер так и не привёз {product}.",
        ],
        [
            "Извините за ожидание. Посылка у курьерской службы; между складами трек может не обновляться до 3 "
            "дней. Если движения нет 7 дней, отправим замену.",
            "Посылка в пути у курьера. Отслеживание иногда замирает на пару дней; если за 7 дней ничего не "
            "изменится, отправим заказ заново за наш счёт.",
        ],
    ),
    "ru_address": (
        [
            "Указал неправильный адрес доставки в заказе {order}, можно исправить?",
            "Пожалуйста, поменяйте адрес доставки, я переехал.",
            "Можно изменить адрес, куда привезут {product}?",
            "Ошибся в улице, исправьте адрес до отправки.",
        ],
        [
            "Адрес можно изменить, пока заказ не отправлен: пришлите полный новый адрес. После отправки "
            "перенаправить посылку можно на сайте курьера.",
            "Напишите правильный адрес — изменим, если заказ ещё не ушёл; иначе воспользуйтесь переадресацией у "
            "курьера.",
        ],
    ),
    "ru_invoice": (
        [
            "Нужен счёт-фактура по заказу {order} для организации.",
            "Где скачать счёт на покупку?",
            "Пришлите закрывающие документы за {product}.",
            "Можно получить копию счёта с реквизитами компании?",
        ],
        [
            "Счета лежат в разделе Заказы → Счёт (PDF). Реквизиты компании и ИНН укажите в Профиль → Оплата "
            "перед скачиванием.",
            "Все счета можно скачать в PDF в разделе Заказы; реквизиты берутся из Профиль → Оплата.",
        ],
    ),
    "ru_double_charge": (
        [
            "С меня списали деньги дважды за заказ {order}!",
            "На карте два платежа за один {product}.",
            "Двойное списание с карты, верните один платёж.",
            "Почему оплата прошла два раза?",
        ],
        [
            "Второе списание — это блокировка суммы банком, а не платёж: банк снимет её сам за 3–5 дней.",
            "Оплата прошла один раз; вторая строка — временная блокировка, банк уберёт её в течение 5 дней.",
        ],
    ),
    "ru_broken": (
        [
            "{product} пришла разбитой, стекло треснуло.",
            "{product} перестала работать через два дня.",
            "Товар повреждён, что делать?",
            "Получил бракованный товар, не включается.",
            "Пришёл неисправный {product}.",
        ],
        [
            "Жаль, что так вышло. Пришлите фото товара и коробки — сразу отправим замену, повреждённый "
            "возвращать не нужно.",
            "Повреждённые и бракованные товары меняем бесплатно: ответьте фотографией повреждения, и мы вышлем "
            "новый.",
        ],
    ),
    "ru_cancel": (
        [
            "Отмените, пожалуйста, заказ {order}, я передумал.",
            "Заказал не тот {product}, можно отменить?",
            "Как отменить заказ, который я сделал {when_ru}?",
            "Отмените заказ {order}, пока его не отправили.",
        ],
        [
            "Заказ отменяется в разделе Заказы → Отменить, пока он не отправлен; деньги вернутся на карту за 5 "
            "дней. Отправленный заказ можно не забирать или вернуть.",
            "Пока заказ не отправлен, нажмите «Отменить» в разделе Заказы — оплата вернётся. Отправленные заказы "
            "можно вернуть.",
        ],
    ),
    "ru_promo": (
        [
            "Промокод не срабатывает при оформлении.",
            "Купон пишет «недействителен», я получил его в рассылке.",
            "Скидка по промокоду не применилась к заказу {order}.",
            "Почему не принимается код скидки?",
        ],
        [
            "Промокод действует один раз на аккаунт и не на товары со скидкой; проверьте срок в письме. "
            "Пришлите код — применим вручную, если он должен работать.",
            "Код не принимается, если срок истёк, он уже использован или в корзине уценённые товары. Напишите "
            "код, посмотрим.",
        ],
    ),
    "ru_unsubscribe": (
        [
            "Перестаньте присылать мне рекламные письма.",
            "Как отписаться от рассылки?",
            "Удалите меня из списка рассылки.",
            "Слишком много рекламы на почту, отключите.",
        ],
        [
            "Внизу каждого письма рассылки есть ссылка «Отписаться»; или отключите рекламу в Профиль → "
            "Уведомления. Письма о заказах продолжат приходить.",
            "Отключить рассылку можно в Профиль → Уведомления или по ссылке «Отписаться» в любом письме.",
        ],
    ),
}

OPENERS = ["Hi,", "Hello,", "Hello team,", "Good morning,", "Hey there,", ""]
OPENERS_RU = ["Здравствуйте!", "Добрый день.", "Привет,", "Доброе утро!", ""]
NOISE = [
    "I have been your customer for years.",
    "This is the second time I write about it.",
    "My name is on the order.",
    "I bought it as a gift.",
    "Sorry for my English.",
    "I'm writing from my phone.",
    "Hope you can help quickly.",
    "",
    "",
]
NOISE_RU = [
    "Я ваш постоянный покупатель.",
    "Пишу уже второй раз.",
    "Покупал в подарок.",
    "Пишу с телефона.",
    "Надеюсь на быстрый ответ.",
    "",
    "",
]
CLOSERS = ["Thanks,\n{name}", "Best regards,\n{name}", "{name}", "Cheers, {name}"]
CLOSERS_RU = ["Спасибо,\n{name}", "С уважением,\n{name}", "{name}"]
NAMES = ["Anna", "John Smith", "Maria", "Peter", "Lee", "Sam Brown"]
NAMES_RU = ["Ольга", "Иван Петров", "Мария", "Сергей", "Анна Ковалёва"]
WHEN = ["yesterday", "on Monday", "last week", "three days ago"]
WHEN_RU = ["вчера", "в понедельник", "на прошлой неделе", "три дня назад"]


@dataclass(frozen=True)
class Case:
    topic: str
    subject: str
    question: str
    answer: str


def _case(rng: random.Random, topic: str, *, unseen: bool = False) -> Case:
    """A ticket of ``topic``: in a phrasing the corpus has (all but the last), or the ``unseen`` one."""
    questions, answers = TOPICS[topic]
    russian = topic.startswith("ru_")
    question = (questions[-1] if unseen else rng.choice(questions[:-1])).format(
        product=rng.choice(PRODUCTS_RU if russian else PRODUCTS),
        order=f"{rng.randint(10_000, 99_999)}",
        when=rng.choice(WHEN),
        when_ru=rng.choice(WHEN_RU),
    )
    subject = question.split(",")[0].split(".")[0].split("?")[0][:60]
    if rng.random() < 0.3:
        subject = "Re: " + subject if rng.random() < 0.5 else ("Вопрос" if russian else "Question")
    body = "\n".join(
        line
        for line in (
            rng.choice(OPENERS_RU if russian else OPENERS),
            rng.choice(NOISE_RU if russian else NOISE),
            question,
            rng.choice(NOISE_RU if russian else NOISE),
            "",
            rng.choice(CLOSERS_RU if russian else CLOSERS).format(
                name=rng.choice(NAMES_RU if russian else NAMES)
            ),
        )
        if line is not None
    )
    greeting = rng.choice(["Здравствуйте!" if russian else "Hi,", "Добрый день," if russian else "Hello,"])
    answer = (
        f"{greeting}\n\n{rng.choice(answers)}\n\n{'С уважением, поддержка' if russian else 'Best, Support'}"
    )
    return Case(topic, subject, body, answer)


def corpus(size: int, *, seed: int = 7) -> list[Case]:
    """``size`` solved tickets, topics in a skewed mix (some questions are asked far more often)."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    popularity = [1.0 / (1 + rank * 0.25) for rank in range(len(names))]
    rng.shuffle(popularity)
    return [_case(rng, rng.choices(names, popularity)[0]) for _ in range(size)]


def held_out(size: int, *, unseen: bool, seed: int = 11) -> list[Case]:
    """New tickets of every topic in turn (another seed): in the phrasings the corpus has, filled anew,
    or in the one phrasing per topic the corpus never has (``unseen``)."""
    rng = random.Random(seed)
    names = sorted(TOPICS)
    return [_case(rng, names[i % len(names)], unseen=unseen) for i in range(size)]


def topic_of_answer(answer: str) -> str | None:
    for topic, (_questions, answers) in TOPICS.items():
        if any(known in answer for known in answers):
            return topic
    return None
