/** Written by `postdesk addon manifest`: the Postdesk backend this shim calls. */
var POSTDESK_BACKEND_URL = "https://postdesk.example.com/";
