{# Whether a click came from a link-preview fetcher (iMessage, chat apps, social crawlers)
   rather than a person: they open a link seconds after delivery and would inflate clicks and
   steal attribution. Matched on the user agent, case-insensitively, in plain SQL. #}
{% macro is_link_preview(user_agent) -%}
    {%- set markers = [
        'facebookexternalhit', 'facebot', 'twitterbot', 'slackbot', 'whatsapp', 'telegrambot',
        'discordbot', 'linkedinbot', 'skypeuripreview', 'googlebot', 'bingbot', 'applebot',
        'embedly', 'preview', 'crawler', 'spider', 'bot/'
    ] -%}
    coalesce(
        {%- for marker in markers %}
        lower({{ user_agent }}) like '%{{ marker }}%'{% if not loop.last %} or{% endif %}
        {%- endfor %},
        false
    )
{%- endmacro %}
