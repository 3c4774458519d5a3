"""Shopper pages."""

from django.urls import path

from search import views

app_name = "search"

urlpatterns = [
    path("", views.home, name="home"),
    path("products/<int:pk>/", views.product_detail, name="product"),
    path("photos/", views.store_photo, name="store_photo"),
    path("photos/<str:photo_id>/", views.stored_photo, name="stored_photo"),
]
