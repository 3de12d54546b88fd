from django.http import JsonResponse

from shop.models import Customer, Order


def order_total(request, order_id):
    order = Order.objects.get(pk=order_id)
    return JsonResponse({"order": order.id, "total_cents": order.total_cents})


def customers(request):
    return JsonResponse({"customers": list(Customer.objects.values_list("email", flat=True))})
