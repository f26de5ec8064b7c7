"""Herald's auth.backend_check endpoint for a Django project.

Herald calls this view when a browser connects without a token, forwarding
the browser's cookies (sessionid, csrftoken), and admits the connection as
the user it returns. Add it to urls.py:

    from herald_auth_view import herald_auth
    urlpatterns += [path("herald/auth/", herald_auth)]

and point Herald at it (auth.backend_check.url: http://django:8000/herald/auth/).
"""
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET


@never_cache
@require_GET
def herald_auth(request):
    user = request.user  # set from the session cookie by AuthenticationMiddleware
    if not user.is_authenticated:
        return JsonResponse({"user_id": None}, status=401)
    # Extra Herald channels this user may receive, e.g. per team:
    channels = []  # [f"team:{t.pk}" for t in user.teams.all()]
    return JsonResponse({"user_id": user.pk, "channels": channels})
